"""A message as a decoder assembles it: the MESSAGE frame announces ``count`` named
arrays, whose ARRAY frames follow (docs/FORMAT.md section 1); :class:`Assembly`
gathers them by name, checks each against the message's rules (named, not repeated,
the payloads together within ``max_frame_bytes``, the receiver's schema) and the
whole against its schema once the last one arrived.

The decoder owns one while a message is in progress and none otherwise; it reads
the frames, this says what they add up to.  Every check runs on a header, before
anything is allocated for the array (docs/FORMAT.md sections 6-7).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ._events import Message, Schema
from ._limits import check_member, check_schema
from .exceptions import BufferMismatchError, FrameTooLargeError, SchemaMismatchError

if TYPE_CHECKING:
    import numpy as np

    from ._types import MessageOut

__all__ = ["Assembly", "check_message"]


def check_message(count: int, max_message_arrays: int) -> None:
    """Check a MESSAGE header's ``count`` against the decoder's limit.

    Raises:
        FrameTooLargeError: more than ``max_message_arrays`` arrays.
    """
    if count > max_message_arrays:
        raise FrameTooLargeError(
            f"message of {count} arrays exceeds max_message_arrays={max_message_arrays}"
        )


def _dict_out(out: object) -> MessageOut:
    if out is not None and not isinstance(out, Mapping):
        raise BufferMismatchError("a message needs out= as a dict of arrays by name")
    return out or {}


class Assembly:
    """The arrays of one message, gathered as their frames arrive.

    Args:
        count: the arrays the MESSAGE frame announced.
        schema: what the receiver expects: None, or a dict of schemas by name (the
            message must have exactly these names).
        out: destinations by name (names not in it are allocated), or None.

    Raises:
        SchemaMismatchError: ``schema`` is one array's (a Schema).
        BufferMismatchError: ``out`` is not a dict.
    """

    __slots__ = ("arrays", "count", "out", "payloads", "schema")

    def __init__(
        self, count: int, schema: Schema | dict[str, Schema | None] | None, out: object
    ) -> None:
        if schema is not None and not isinstance(schema, dict):
            raise SchemaMismatchError("expected a single array, got a message")
        self.out = _dict_out(out)
        self.schema = schema
        self.count = count
        self.arrays: dict[str, np.ndarray] = {}
        self.payloads = 0  # payload bytes of the arrays so far

    @property
    def progress(self) -> str:
        """``"k of n arrays"``, for errors."""
        return f"{len(self.arrays)} of {self.count} arrays"

    @property
    def complete(self) -> bool:
        """Every announced array arrived."""
        return len(self.arrays) == self.count

    def redirect(self, out: object) -> None:
        """Replace the destinations of the arrays still to come (after an ``out=``
        was refused: BufferMismatchError)."""
        self.out = _dict_out(out)

    def check(
        self,
        text: str | None,
        code: int,
        shape: tuple[int, ...],
        length: int,
        max_bytes: int,
        count: int | np.dtype = 0,
    ) -> None:
        """Check the header of the message's next array (named ``text``; ``count``: its
        header's count field, a datetime64/timedelta64 multiplier).

        Raises:
            MalformedFrameError: no name, or a name already received.
            FrameTooLargeError: the payloads together exceed ``max_bytes``.
            SchemaMismatchError: not a name, dtype or shape the schema allows.
        """
        check_member(text, length, self.arrays, self.payloads, max_bytes)
        check_schema(self.schema, True, text, code, shape, count)

    def add(self, name: str, array: np.ndarray, length: int) -> None:
        """Record a received array of ``length`` payload bytes."""
        self.arrays[name] = array
        self.payloads += length

    def event(self) -> Message:
        """The complete message.

        Raises:
            SchemaMismatchError: names the schema expects are missing.
        """
        if isinstance(self.schema, dict):
            missing = set(self.schema) - set(self.arrays)
            if missing:
                raise SchemaMismatchError(f"message lacks arrays {sorted(missing)}")
        return Message(self.arrays)
