"""What the domain modules raise for bad input: every problem at once, by field, which
the pages show beside their fields and the API returns under `fields`."""

from __future__ import annotations


class FieldErrors(ValueError):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{key}: {message}" for key, message in errors.items()))
        self.errors = errors
