"""How long a request may wait for its answer to begin (BentoML's ``traffic.timeout``), without the leak.

BentoML's ``TimeoutMiddleware`` (1.4) schedules ``loop.call_later(timeout, …)`` for every request
and never cancels it: each request's timer, future and copied context (its OpenTelemetry span
included, ~20 objects) stay alive for the full timeout after the answer went out. At 150 requests
a second and the service's 120 s that is ~18,000 dead requests held in memory at any time, and every
full garbage collection walks them with the event loop stopped (measured: 4,500 requests left 4,505
pending timers after 25 s idle).

``RequestTimeout`` keeps BentoML's behaviour: a request that has not started its answer within
``timeout`` seconds is cancelled and answered 504; once the answer has started, no limit applies.
Its timer is cancelled as soon as either happens. ``replace_bentoml_timeout`` swaps it in, with
BentoML's own ``timeout`` value, before the app builds its middleware stack (at its first call).
"""

from __future__ import annotations

import asyncio

from leadscore.serving.admission import _fixed

# BentoML's ``traffic.timeout`` for this service (the deadline answers with the rules long before).
TRAFFIC_TIMEOUT_S = 120


class RequestTimeout:
    """ASGI middleware: 504 when a request has not begun its answer within ``timeout`` seconds."""

    def __init__(self, app, timeout: float) -> None:
        self.app, self.timeout = app, timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def _send(message) -> None:
            nonlocal started
            if not started:
                started = True
                if not limit.expired():  # expired, the task is being cancelled; reschedule would raise
                    limit.reschedule(None)  # the answer has begun: from here on, no limit
            await send(message)

        try:
            async with asyncio.timeout(self.timeout) as limit:
                await self.app(scope, receive, _send)
        except TimeoutError:
            if not limit.expired() or started:
                raise  # the app's own TimeoutError, not this limit
            start, body = _fixed(504, f"request: expected an answer within {self.timeout:g} s "
                                      f"(traffic.timeout), found none by then")
            await send(start)
            await send(body)


def replace_bentoml_timeout(app) -> bool:
    """Put ``RequestTimeout`` where BentoML's ``TimeoutMiddleware`` is in ``app`` (a Starlette app
    whose middleware stack is not built yet), with the same timeout. False when there is none."""
    from starlette.middleware import Middleware

    try:
        from bentoml._internal.server.http.traffic import TimeoutMiddleware
    except ImportError:  # a BentoML without it: nothing to replace (a test says so)
        return False

    if getattr(app, "middleware_stack", None) is not None:
        raise RuntimeError("the app has built its middleware stack: its middlewares can no longer change")
    for i, middleware in enumerate(app.user_middleware):
        if middleware.cls is TimeoutMiddleware:
            app.user_middleware[i] = Middleware(RequestTimeout, timeout=middleware.kwargs["timeout"])
            return True
    return False
