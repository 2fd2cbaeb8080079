"""Typed failures of the event contract: callers tell bad bytes from unknown schemas from bad records."""


class CodecError(Exception):
    """Base class: a message could not be encoded or decoded."""


class MalformedMessageError(CodecError):
    """The bytes are not a framed Avro message (no known header, truncated, garbage)."""


class UnknownSchemaError(CodecError):
    """The message names a writer schema this process does not know."""


class IncompatibleSchemaError(CodecError):
    """The writer schema cannot be read with the current reader schema."""


class RecordEncodeError(CodecError):
    """A record does not fit its schema."""


class SchemaRegistryError(CodecError):
    """The Confluent schema registry refused or could not be reached."""
