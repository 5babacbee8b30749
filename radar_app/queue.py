"""The Redis connection and the RQ queue, kept in app.extensions["rq"]."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app
from redis import Redis
from rq import Queue


@dataclass(frozen=True)
class RQState:
    connection: Redis
    queue: Queue


def connect(redis_url: str, socket_timeout: float | None = 5, connect_timeout: float = 2) -> Redis:
    """A Redis client. The web uses short timeouts so a request answers 503 quickly when
    Redis is down or frozen instead of hanging a server thread; the worker passes None
    because its blocking dequeue waits longer than any short socket timeout.

    Redis.from_url builds its own connection pool, whose connections do not retry a
    command that timed out: one timeout costs a request one `socket_timeout`, no more."""
    return Redis.from_url(
        redis_url, socket_connect_timeout=connect_timeout, socket_timeout=socket_timeout
    )


def init_app(app: Flask) -> None:
    # Every Redis call the web makes (enqueue, cancel, /healthz, the admin pages, the
    # preview's shared rate limit) goes through this connection.
    timeout = app.config["REDIS_WEB_TIMEOUT"]
    connection = connect(app.config["REDIS_URL"], socket_timeout=timeout, connect_timeout=timeout)
    queue = Queue(app.config["RQ_QUEUE"], connection=connection)
    app.extensions["rq"] = RQState(connection=connection, queue=queue)


def get_queue() -> Queue:
    return current_app.extensions["rq"].queue


def get_redis() -> Redis:
    return current_app.extensions["rq"].connection
