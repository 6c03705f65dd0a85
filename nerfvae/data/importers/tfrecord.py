"""TFRecord files and ``tf.train.Example`` protos, read without TensorFlow or protobuf.

**Framing.** A TFRecord file is a sequence of records, each::

    uint64 length            (little-endian)
    uint32 masked_crc32c(the 8 length bytes)
    bytes  data[length]
    uint32 masked_crc32c(data)

where ``masked(c) = ((c >> 15) | (c << 17)) + 0xa282ead8 (mod 2^32)`` and CRC-32C is the
Castagnoli CRC (reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF).

**CRC-32C** is computed here in numpy, vectorised: the message is cut into ``L`` equal blocks that
are processed side by side, one byte column per step (a 256-entry table lookup over ``L`` lanes),
and the lane CRCs are merged pairwise in ``log2 L`` vectorised steps. Merging uses linearity: with
a zero initial register, ``crc(A ‖ B) = Z_{|B|}(crc(A)) xor crc(B)``, where ``Z_n`` is the linear
map of feeding ``n`` zero bytes (a 32×32 matrix over GF(2), built by repeated squaring). Leading
zero bytes leave a zero register unchanged, so padding at the front is free, and the standard
initial value is added at the end as ``Z_N(0xFFFFFFFF)``.

**Protobuf.** ``tf.train.Example`` is ``Example{Features features = 1}``, ``Features{map<string,
Feature> feature = 1}`` (map entries: key = 1, value = 2), ``Feature{oneof: BytesList = 1,
FloatList = 2, Int64List = 3}`` and each list has ``repeated value = 1`` (floats and ints usually
packed). :func:`parse_example` decodes exactly that from the wire format (varints, length-delimited
fields, fixed32/fixed64) and skips unknown fields.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nerfvae.errors import DataError

CRC32C_POLYNOMIAL = 0x82F63B78
_MASK_DELTA = 0xA282EAD8
_MASK32 = 0xFFFFFFFF


def _byte_table() -> np.ndarray:
    """``T[b]``: the register after shifting byte ``b`` through 8 reflected steps."""
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(CRC32C_POLYNOMIAL), table >> 1)
    return table.astype(np.uint32)


_TABLE = _byte_table()
_BITS = np.arange(32, dtype=np.uint32)


def _apply(operator: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Apply a GF(2) linear map (``[32]`` uint32: the images of the 32 unit bits) to ``values``."""
    bits = (values[..., None] >> _BITS) & np.uint32(1)
    return np.bitwise_xor.reduce(np.where(bits.astype(bool), operator, np.uint32(0)), axis=-1)


def _zeros_operator_powers() -> list[np.ndarray]:
    """``[Z_1, Z_2, Z_4, ...]``: the register map of feeding 2^k zero bytes, k = 0..63."""
    unit_bits = np.uint32(1) << _BITS
    one_byte = _TABLE[unit_bits & np.uint32(0xFF)] ^ (unit_bits >> np.uint32(8))
    powers = [one_byte.astype(np.uint32)]
    for _ in range(63):
        powers.append(_apply(powers[-1], powers[-1]))  # Z_{2n} = Z_n ∘ Z_n
    return powers


_ZERO_POWERS = _zeros_operator_powers()


def _feed_zeros(values: np.ndarray, count: int) -> np.ndarray:
    """Register(s) after feeding ``count`` zero bytes."""
    power = 0
    while count:
        if count & 1:
            values = _apply(_ZERO_POWERS[power], values)
        count >>= 1
        power += 1
    return values


def crc32c(data: bytes | bytearray | memoryview | np.ndarray) -> int:
    """CRC-32C (Castagnoli) of ``data``; ``crc32c(b"123456789") == 0xE3069283``."""
    message = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data
    length = int(message.size)
    if length == 0:
        return 0
    # Block length 2^b ≈ sqrt(N) and a power-of-two lane count, so merges use Z_{2^k} only.
    block = 1 << max(2, (max(length, 1).bit_length() + 1) // 2)
    lanes = 1 << max(0, ((length + block - 1) // block - 1).bit_length())
    padded = np.zeros(lanes * block, dtype=np.uint32)
    padded[lanes * block - length :] = message  # leading zeros do not change a zero register
    columns = padded.reshape(lanes, block)
    register = np.zeros(lanes, dtype=np.uint32)
    for column in range(block):
        register = _TABLE[(register ^ columns[:, column]) & np.uint32(0xFF)] ^ (
            register >> np.uint32(8)
        )
    level = block.bit_length() - 1  # log2(block): Z for one block is _ZERO_POWERS[level]
    while register.size > 1:
        register = _apply(_ZERO_POWERS[level], register[0::2]) ^ register[1::2]
        level += 1
    initial = _feed_zeros(np.array([_MASK32], dtype=np.uint32), length)
    return int((register[0] ^ initial[0]) ^ np.uint32(_MASK32))


def masked_crc32c(data: bytes | bytearray | memoryview) -> int:
    """TFRecord's masked CRC-32C."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & _MASK32


@dataclass(frozen=True)
class RecordLocation:
    """Where a record's data lies in its file (found by :func:`scan_tfrecord`)."""

    path: Path
    index: int
    offset: int
    length: int


def scan_tfrecord(path: str | Path, check_crc: bool = True) -> list[RecordLocation]:
    """Locate every record of a TFRecord file, reading only the 12-byte headers.

    Checks each length's CRC (``check_crc``) and that the file holds every record's data and
    footer in full; the data CRC is checked by :func:`read_record`.
    """
    path = Path(path)
    locations = []
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            offset = 0
            while offset < size:
                index = len(locations)
                header = handle.read(12)
                if len(header) < 12:
                    raise DataError(
                        f"{path}: truncated record {index} at byte {offset} (incomplete header)"
                    )
                (length,) = struct.unpack("<Q", header[:8])
                (length_crc,) = struct.unpack("<I", header[8:])
                if check_crc and masked_crc32c(header[:8]) != length_crc:
                    raise DataError(
                        f"{path}: record {index} at byte {offset}: length CRC mismatch "
                        "(corrupt file, or not a TFRecord file)"
                    )
                end = offset + 12 + length + 4
                if end > size:
                    raise DataError(
                        f"{path}: truncated record {index} at byte {offset}: needs {length} data "
                        f"bytes + 4-byte CRC, only {size - offset - 12} remain"
                    )
                locations.append(RecordLocation(path, index, offset + 12, length))
                handle.seek(end)
                offset = end
    except FileNotFoundError:
        raise DataError(f"{path}: file is missing") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error})") from None
    return locations


def read_record(location: RecordLocation, check_crc: bool = True) -> bytes:
    """The data of one record, with its CRC checked."""
    where = f"{location.path}: record {location.index}"
    try:
        with open(location.path, "rb") as handle:
            handle.seek(location.offset)
            data = handle.read(location.length + 4)
    except FileNotFoundError:
        raise DataError(f"{location.path}: file is missing") from None
    except OSError as error:
        raise DataError(f"{where}: cannot read ({error})") from None
    if len(data) < location.length + 4:
        raise DataError(f"{where}: truncated (file shorter than its record header says)")
    payload, footer = data[: location.length], data[location.length :]
    if check_crc and masked_crc32c(payload) != struct.unpack("<I", footer)[0]:
        raise DataError(f"{where}: data CRC mismatch (corrupt record)")
    return payload


def iter_tfrecord(path: str | Path, check_crc: bool = True) -> Iterator[bytes]:
    """The records of a TFRecord file in order, CRC-checked."""
    for location in scan_tfrecord(path, check_crc):
        yield read_record(location, check_crc)


# ---------------------------------------------------------------------------------------------
# Protobuf wire format: just enough for tf.train.Example
# ---------------------------------------------------------------------------------------------


class ProtoError(ValueError):
    """Malformed protobuf bytes (the caller wraps it in a DataError naming the record)."""


_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5


def _varint(buffer: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(buffer):
            raise ProtoError("truncated varint")
        byte = buffer[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7
        if shift >= 70:
            raise ProtoError("varint longer than 10 bytes")


def _fields(buffer: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """``(field number, wire type, value)``: ints for varint/fixed, bytes for length-delimited."""
    position, end = 0, len(buffer)
    while position < end:
        key, position = _varint(buffer, position)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise ProtoError("field number 0")
        if wire_type == _VARINT:
            value, position = _varint(buffer, position)
        elif wire_type == _FIXED64:
            if position + 8 > end:
                raise ProtoError("truncated fixed64")
            value = int.from_bytes(buffer[position : position + 8], "little")
            position += 8
        elif wire_type == _LENGTH_DELIMITED:
            length, position = _varint(buffer, position)
            if position + length > end:
                raise ProtoError(f"length-delimited field {number} runs past the end")
            value = bytes(buffer[position : position + length])
            position += length
        elif wire_type == _FIXED32:
            if position + 4 > end:
                raise ProtoError("truncated fixed32")
            value = int.from_bytes(buffer[position : position + 4], "little")
            position += 4
        else:
            raise ProtoError(f"unsupported wire type {wire_type} (field {number})")
        yield number, wire_type, value


def _to_int64(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def _parse_feature(buffer: bytes) -> list[bytes] | np.ndarray:
    """One ``Feature``: ``list[bytes]``, float32 ``[n]`` or int64 ``[n]``."""
    kind, payload = None, b""
    for number, wire_type, value in _fields(buffer):
        if number in (1, 2, 3) and wire_type == _LENGTH_DELIMITED:
            kind, payload = number, value  # oneof: the last one wins, as in protobuf
    if kind is None:
        return []
    if kind == 1:
        return [v for n, w, v in _fields(payload) if n == 1 and w == _LENGTH_DELIMITED]  # type: ignore[misc]
    if kind == 2:
        chunks: list[np.ndarray] = []
        for number, wire_type, value in _fields(payload):
            if number != 1:
                continue
            if wire_type == _LENGTH_DELIMITED:  # packed
                if len(value) % 4:  # type: ignore[arg-type]
                    raise ProtoError("packed float list length is not a multiple of 4")
                chunks.append(np.frombuffer(value, dtype="<f4"))  # type: ignore[arg-type]
            elif wire_type == _FIXED32:
                chunks.append(np.frombuffer(int(value).to_bytes(4, "little"), dtype="<f4"))  # type: ignore[arg-type]
            else:
                raise ProtoError(f"float list value with wire type {wire_type}")
        return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    integers: list[int] = []
    for number, wire_type, value in _fields(payload):
        if number != 1:
            continue
        if wire_type == _LENGTH_DELIMITED:  # packed varints
            position = 0
            while position < len(value):  # type: ignore[arg-type]
                item, position = _varint(value, position)  # type: ignore[arg-type]
                integers.append(_to_int64(item))
        elif wire_type == _VARINT:
            integers.append(_to_int64(value))  # type: ignore[arg-type]
        else:
            raise ProtoError(f"int64 list value with wire type {wire_type}")
    return np.array(integers, dtype=np.int64)


def parse_example(buffer: bytes) -> dict[str, list[bytes] | np.ndarray]:
    """Decode a serialized ``tf.train.Example`` into ``{feature name: values}``.

    Bytes features become ``list[bytes]``, float features float32 arrays, int64 features int64
    arrays. Raises :class:`ProtoError` on malformed input.
    """
    features: dict[str, list[bytes] | np.ndarray] = {}
    for number, wire_type, value in _fields(buffer):
        if number != 1 or wire_type != _LENGTH_DELIMITED:
            continue
        for entry_number, entry_type, entry in _fields(value):  # type: ignore[arg-type]
            if entry_number != 1 or entry_type != _LENGTH_DELIMITED:
                continue
            key, feature = "", b""
            for field_number, field_type, field_value in _fields(entry):  # type: ignore[arg-type]
                if field_number == 1 and field_type == _LENGTH_DELIMITED:
                    try:
                        key = field_value.decode("utf-8")  # type: ignore[union-attr]
                    except UnicodeDecodeError:
                        raise ProtoError("feature name is not UTF-8") from None
                elif field_number == 2 and field_type == _LENGTH_DELIMITED:
                    feature = field_value  # type: ignore[assignment]
            features[key] = _parse_feature(feature)
    return features
