"""Drives the published `runware-sdk` client (PyPI, 1.8.0) against a gateway, for the gateway's tests.

Reads one JSON object on stdin: {"transport": "rest" | "websocket", "httpUrl", "wsUrl", "apiKey", "task"};
runs the task with `client.run` as its README shows, with nothing changed but the URLs; prints one JSON
line: {"images": [...]} or {"error": {"type", "text", "code", "parameter", "status"}}. With "dropAfterSend"
it also prints {"sent": true} once the task is on the wire and waits for the test to cut the connection.
"""

import asyncio
import json
import sys

from runware import Runware, RunwareError


async def main() -> None:
    spec = json.load(sys.stdin)
    async with Runware(
        api_key=spec["apiKey"],
        transport=spec["transport"],
        http_base_url=spec["httpUrl"],
        ws_base_url=spec["wsUrl"],
    ) as client:
        try:
            results = await client.run(spec["task"])
            print(json.dumps({"images": results}), flush=True)
        except RunwareError as error:
            print(json.dumps({"error": {"type": type(error).__name__, "text": str(error), "code": error.code, "parameter": error.parameter, "status": error.status_code}}), flush=True)


asyncio.run(main())
