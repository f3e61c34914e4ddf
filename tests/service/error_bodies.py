"""What every refusal looks like: its status, a JSON body {"error": message}, and an app still serving."""

from __future__ import annotations

import httpx

# An error names what was wrong; it never echoes a large part of the request back.
LONGEST_MESSAGE = 400  # characters


async def assert_error(client: httpx.AsyncClient, response: httpx.Response, status: int, *words: str) -> str:
    """The answer is `status` with a short JSON error naming `words`, and the app still answers afterwards;
    the error's message."""
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"] and isinstance(body["error"], str) and body["error"]
    for word in words:
        assert word in body["error"], body["error"]
    assert len(body["error"]) < LONGEST_MESSAGE, body["error"][:300]
    assert (await client.get("/health/live")).status_code == 200
    return body["error"]
