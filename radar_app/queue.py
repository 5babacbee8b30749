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


def connect(redis_url: str, socket_timeout: float | None = 5) -> Redis:
    """A Redis client. The web uses short timeouts so a request answers 503 quickly when
    Redis is down instead of hanging a server thread; the worker passes None because its
    blocking dequeue waits longer than any short socket timeout."""
    return Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=socket_timeout)


def init_app(app: Flask) -> None:
    connection = connect(app.config["REDIS_URL"])
    queue = Queue(app.config["RQ_QUEUE"], connection=connection)
    app.extensions["rq"] = RQState(connection=connection, queue=queue)


def get_queue() -> Queue:
    return current_app.extensions["rq"].queue


def get_redis() -> Redis:
    return current_app.extensions["rq"].connection
