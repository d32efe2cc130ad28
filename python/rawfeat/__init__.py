"""rawfeat: the Python client of the rawfeat feature store.

    import rawfeat
    client = rawfeat.Client("127.0.0.1:7070")
    train = client.join("user_orders", labels, time_column="ts")

Everything a call returns is computed by the server from raw events at one
watermark (``df.attrs["watermark"]``); passing it back gives the same frame.
"""

from rawfeat.client import Client, IngestSummary, RawfeatError

__all__ = ["Client", "IngestSummary", "RawfeatError"]
