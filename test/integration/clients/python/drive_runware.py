"""Drives the published `runware` client (PyPI, 0.5.24) against a gateway, for the gateway's tests.

Reads one JSON object on stdin: {"url", "apiKey", "task": {IImageInference fields}}; runs the task through
the client exactly as its README shows, with nothing changed but the URL; prints one JSON line: either
{"images": [...]} or {"error": {"type", "text", "code", "data"}} — what the client's caller sees.
"""

import asyncio
import dataclasses
import json
import sys

from runware import IEmbedding, IImageInference, Runware


async def main() -> None:
    spec = json.load(sys.stdin)
    task = dict(spec["task"])
    task["embeddings"] = [IEmbedding(**embedding) for embedding in task.get("embeddings", [])]
    client = Runware(api_key=spec["apiKey"], url=spec["url"])
    try:
        await client.connect()
        images = await client.imageInference(requestImage=IImageInference(**task))
        print(json.dumps({"images": [dataclasses.asdict(image) for image in images]}))
    except Exception as error:  # noqa: BLE001 - the test reports what the caller would see, whatever it is
        print(json.dumps({"error": {"type": type(error).__name__, "text": str(error), "code": getattr(error, "code", None), "data": getattr(error, "error_data", None)}}))
    finally:
        await client.disconnect()


asyncio.run(main())
