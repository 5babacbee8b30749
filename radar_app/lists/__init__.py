"""Suppression lists' pages: upload or paste RadarIDs never to buy, default lists."""

from radar_app.lists.routes import bp

__all__ = ["bp"]
