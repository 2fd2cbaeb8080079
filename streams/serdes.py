"""The event contract's Avro codecs as faust codecs, for table keys, values and changelogs."""
from __future__ import annotations

from typing import Any

from faust.serializers import codecs

from topics.codec import AvroCodec


class FaustAvroCodec(codecs.Codec):
    def __init__(self, avro: AvroCodec, **kwargs: Any) -> None:
        self.avro = avro
        super().__init__(**kwargs)

    def _dumps(self, obj: Any) -> bytes:
        return self.avro.encode(obj)

    def _loads(self, s: bytes) -> Any:
        return self.avro.decode(s)


def register(name: str, avro: AvroCodec) -> FaustAvroCodec:
    """Registers `avro` under `name` (usable as a serializer string) and returns the faust codec."""
    codec = FaustAvroCodec(avro)
    codecs.register(name, codec)
    return codec
