"""The event contract of creative-sync: topic catalogue, Avro schemas and codec, event models.

Imports no faust and no aiohttp: producers outside the pipeline can use it on its own.
"""
