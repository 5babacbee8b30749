"""Which free snapshot pages to ask for, given what came back (no I/O here).

The snapshot (Purchase=0, Fields=RadarID, free) lists every RadarID a job will buy. Its
first page says how many records match, so every later Start offset is known at once and
those pages can be fetched concurrently, while the first chunks are already being bought.
The plan follows the records actually returned:

- a page shorter than asked while the total says more remain (the API capping Limit) is
  followed by a request for the rest of its range;
- an empty page ends its range (the result set shrank);
- a total that grows or shrinks moves the end;
- with max_records, RadarIDs that turn out to be repeats leave the snapshot short of the
  cap, so more is asked for past it until the cap is met or the search is exhausted.

The checkpoint is the end of the contiguous prefix of answered ranges: a resumed run asks
again for the pages after it (they are free; RadarIDs already stored are not added twice).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SnapshotPlan:
    page_size: int
    max_records: int | None
    # Where this run starts (the job's checkpoint) and the RadarIDs stored before it.
    start: int = 0
    count: int = 0
    end: int | None = None  # unknown until the first answer
    _next_offset: int = 0
    _extra: int = 0  # asked for past max_records to make up for repeated RadarIDs
    _total: int = 0
    _empty_at: int | None = None  # an empty page: nothing is listed from here on
    _pending: set[tuple[int, int]] = field(default_factory=set)
    _followups: list[tuple[int, int]] = field(default_factory=list)
    _answered: list[tuple[int, int]] = field(default_factory=list)
    checkpoint: int = 0

    def __post_init__(self) -> None:
        self._next_offset = self.checkpoint = self.start

    def next_request(self) -> tuple[int, int] | None:
        """(Start, Limit) of the next page to ask for, or None for now."""
        if self.end is None:
            if self._pending:
                return None  # the first answer tells where the end is
            return self._ask(self._next_offset, self._limit(self.page_size))
        if self._followups:
            return self._ask(*self._followups.pop(0))
        if self._next_offset >= self.end and not self._pending:
            self._top_up()
        if self._next_offset < self.end:
            limit = min(self.page_size, self.end - self._next_offset)
            return self._ask(self._next_offset, limit)
        return None

    def answered(self, start: int, limit: int, returned: int, total: int, added: int) -> None:
        """Record the answer to (start, limit): `returned` records, the search's `total`,
        `added` new RadarIDs stored."""
        self._pending.discard((start, limit))
        self.count += added
        self._total = total
        if returned == 0:
            self._empty_at = start if self._empty_at is None else min(self._empty_at, start)
        self.end = self._cap(total)
        covered = limit
        if 0 < returned < limit and start + returned < self.end:
            self._followups.append((start + returned, limit - returned))
            covered = returned
        self._answered.append((start, start + covered))
        self._advance_checkpoint()

    @property
    def done(self) -> bool:
        if self.end is None or self._pending or self._followups:
            return False
        if self._next_offset >= self.end:
            self._top_up()
        return self._next_offset >= self.end

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def _ask(self, start: int, limit: int) -> tuple[int, int] | None:
        if limit <= 0:
            return None
        self._pending.add((start, limit))
        self._next_offset = max(self._next_offset, start + limit)
        return start, limit

    def _cap(self, total: int) -> int:
        if self._empty_at is not None:
            total = min(total, self._empty_at)
        if not self.max_records:
            return total
        return min(total, self.max_records + self._extra)

    def _limit(self, wanted: int) -> int:
        if not self.max_records:
            return wanted
        return min(wanted, self.max_records - self.count)

    def _top_up(self) -> None:
        """Repeated RadarIDs left the snapshot short of max_records: ask past the cap."""
        if self.end is None or not self.max_records or self._pending or self._followups:
            return
        missing = self.max_records - self.count
        listed = self._total if self._empty_at is None else min(self._total, self._empty_at)
        if missing > 0 and listed > self.end:
            self._extra += missing
            self.end = self._cap(self._total)

    def _advance_checkpoint(self) -> None:
        self._answered.sort()
        while self._answered and self._answered[0][0] <= self.checkpoint:
            self.checkpoint = max(self.checkpoint, self._answered.pop(0)[1])
