"""TFRecord framing, CRC-32C and tf.train.Example parsing against independent test encoders."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from nerfvae.data.importers.tfrecord import (
    ProtoError,
    crc32c,
    iter_tfrecord,
    masked_crc32c,
    parse_example,
    scan_tfrecord,
)
from nerfvae.errors import DataError


def reference_crc32c(data: bytes) -> int:
    """Bit-at-a-time CRC-32C straight from the definition (reflected polynomial 0x82F63B78)."""
    register = 0xFFFFFFFF
    for byte in data:
        register ^= byte
        for _ in range(8):
            register = (register >> 1) ^ (0x82F63B78 if register & 1 else 0)
    return register ^ 0xFFFFFFFF


def reference_masked(data: bytes) -> int:
    crc = reference_crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame_record(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    return (
        length
        + struct.pack("<I", reference_masked(length))
        + data
        + struct.pack("<I", reference_masked(data))
    )


# A minimal protobuf encoder written from the wire-format spec, independent of the parser.
def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def length_field(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def encode_example(features: dict[str, tuple[str, list]], packed: bool = True) -> bytes:
    entries = b""
    for name, (kind, values) in features.items():
        if kind == "bytes":
            inner = b"".join(length_field(1, value) for value in values)
            feature = length_field(1, inner)
        elif kind == "float":
            if packed:
                inner = length_field(1, np.asarray(values, "<f4").tobytes())
            else:
                inner = b"".join(
                    varint(1 << 3 | 5) + np.float32(value).tobytes() for value in values
                )
            feature = length_field(2, inner)
        else:
            if packed:
                inner = length_field(1, b"".join(varint(value) for value in values))
            else:
                inner = b"".join(varint(1 << 3 | 0) + varint(value) for value in values)
            feature = length_field(3, inner)
        entries += length_field(1, length_field(1, name.encode()) + length_field(2, feature))
    return length_field(1, entries)


def test_crc32c_known_vectors():
    # RFC 3720 (iSCSI) B.4 test vectors and the classic check value.
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(bytes([0xFF] * 32)) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E
    assert crc32c(b"") == 0


@pytest.mark.parametrize("length", [1, 2, 3, 5, 8, 13, 64, 65, 255, 1000, 4099])
def test_crc32c_matches_bitwise_reference(length):
    data = np.random.default_rng(length).integers(0, 256, length, dtype=np.uint8).tobytes()
    assert crc32c(data) == reference_crc32c(data)
    assert masked_crc32c(data) == reference_masked(data)


def test_tfrecord_round_trip(tmp_path):
    payloads = [b"", b"a", bytes(range(256)) * 3, b"last record"]
    path = tmp_path / "data.tfrecord"
    path.write_bytes(b"".join(frame_record(p) for p in payloads))
    assert list(iter_tfrecord(path)) == payloads
    locations = scan_tfrecord(path)
    assert [location.length for location in locations] == [len(p) for p in payloads]


def test_bad_data_crc_names_file_and_record(tmp_path):
    path = tmp_path / "bad.tfrecord"
    blob = bytearray(frame_record(b"first") + frame_record(b"second record"))
    blob[len(frame_record(b"first")) + 12 + 3] ^= 0x01  # flip a bit in record 1's data
    path.write_bytes(bytes(blob))
    with pytest.raises(DataError, match=r"bad\.tfrecord: record 1: data CRC mismatch"):
        list(iter_tfrecord(path))


def test_bad_length_crc_names_file(tmp_path):
    path = tmp_path / "bad_length.tfrecord"
    blob = bytearray(frame_record(b"payload"))
    blob[8] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(DataError, match=r"bad_length\.tfrecord: record 0 .*length CRC mismatch"):
        scan_tfrecord(path)


@pytest.mark.parametrize("cut", [5, 12 + 4, 12 + 10 + 2])
def test_truncated_record_names_file(tmp_path, cut):
    path = tmp_path / "short.tfrecord"
    whole = frame_record(b"x" * 10)
    path.write_bytes(whole + whole[:cut])
    with pytest.raises(DataError, match=r"short\.tfrecord: truncated record 1"):
        scan_tfrecord(path)


@pytest.mark.parametrize("packed", [True, False])
def test_parse_example(packed):
    encoded = encode_example(
        {
            "frames": ("bytes", [b"\xff\xd8jpeg-0", b"", b"jpeg-2"]),
            "cameras": ("float", [1.5, -2.25, 0.0, 3.0e-3, 7.0]),
            "ids": ("int64", [0, 1, 300, -5, 2**40]),
        },
        packed=packed,
    )
    # Unknown fields of every wire type are skipped.
    encoded += varint(7 << 3 | 0) + varint(99) + varint(8 << 3 | 5) + b"abcd"
    encoded += varint(9 << 3 | 1) + b"12345678"
    features = parse_example(encoded)
    assert features["frames"] == [b"\xff\xd8jpeg-0", b"", b"jpeg-2"]
    np.testing.assert_array_equal(
        features["cameras"], np.array([1.5, -2.25, 0.0, 3.0e-3, 7.0], np.float32)
    )
    assert features["cameras"].dtype == np.float32
    np.testing.assert_array_equal(features["ids"], [0, 1, 300, -5, 2**40])


@pytest.mark.parametrize(
    "bad",
    [
        b"\x0a\x05abc",  # length runs past the end
        b"\x0a",  # truncated length varint
        b"\x0b",  # wire type 3 (groups) unsupported
        length_field(1, length_field(1, length_field(1, b"\xff"))),  # feature name not UTF-8
    ],
)
def test_parse_example_rejects_malformed(bad):
    with pytest.raises(ProtoError):
        parse_example(bad)
