"""Reading a spec file safely: a regular file (a FIFO or a device would block or never
end), at most TUTTI_MAX_SPEC_BYTES, checked before it is read; UTF-8, or UTF-8/16/32 with a
byte-order mark; no NUL bytes. Errors are SpecErrors naming the file, never its text."""

from __future__ import annotations

import codecs
import os
import stat
from pathlib import Path

from tutti_mcp.engine.spec_source import SpecLimits, fail, line_col, too_large


def _kind(mode: int) -> str | None:
    """What a non-regular file is, for the message; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


# O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever.
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


def read_spec_bytes(
    path: Path, limits: SpecLimits, source: str, *, follow_symlinks: bool = True
) -> bytes:
    """The bytes of a spec file: a regular file of at most `limits.max_bytes`. `source` is
    how errors name it. Checked with stat before opening (nothing is opened that is not a
    regular file) and with fstat after (the file opened is the file checked). A path already
    resolved and confined is read with `follow_symlinks=False`: a symlink put in its place
    after the check is refused, not followed."""
    flags = _OPEN_FLAGS if follow_symlinks else _OPEN_FLAGS | getattr(os, "O_NOFOLLOW", 0)
    try:
        before = os.stat(path, follow_symlinks=follow_symlinks)
        if stat.S_ISLNK(before.st_mode):
            raise fail(source, "changed while it was being read (now a symlink): try again")
        kind = _kind(before.st_mode)
        if kind:
            raise fail(
                source, f"is {kind}, not a spec file: give the path of a .yaml or .json file"
            )
        if before.st_size > limits.max_bytes:
            raise fail(source, too_large(before.st_size, limits))
        fd = os.open(path, flags)
    except OSError as exc:
        raise fail(source, f"cannot read the spec file: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as f:
        opened = os.fstat(fd)
        if _kind(opened.st_mode) or (opened.st_dev, opened.st_ino) != (
            before.st_dev,
            before.st_ino,
        ):
            raise fail(source, "changed while it was being read: try again")
        try:
            data = f.read(limits.max_bytes + 1)
        except OSError as exc:
            raise fail(source, f"cannot read the spec file: {exc.strerror or exc}") from None
    if len(data) > limits.max_bytes:
        raise fail(source, too_large(len(data), limits))
    return data


# BOMs, longest first: the UTF-32-LE BOM begins with the UTF-16-LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def decode_spec_bytes(data: bytes, source: str) -> str:
    """Spec bytes as text: UTF-8, or UTF-8/16/32 with a byte-order mark."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                text = data[len(bom) :].decode(codec)
            except UnicodeDecodeError as exc:
                raise fail(
                    source,
                    f"starts with a {codec.upper()} byte-order mark but is not valid "
                    f"{codec.upper()} (at byte {exc.start + len(bom)}): save it as UTF-8 text",
                ) from None
            break
    else:
        if b"\x00" in data:
            raise fail(
                source,
                "contains NUL bytes: it is binary, or UTF-16/UTF-32 text without a byte-order "
                "mark; save it as UTF-8 text",
            )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise fail(
                source,
                f"is not UTF-8 text: byte 0x{data[exc.start]:02x} at {line_col(data, exc.start)} "
                "(Latin-1 or another legacy encoding?); save it as UTF-8",
            ) from None
    if "\x00" in text:
        raise fail(source, f"contains a NUL character at {line_col(text, text.index(chr(0)))}")
    return text
