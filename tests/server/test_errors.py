"""Each protocol's error shape, and which protocol a path belongs to."""

from server.errors import OIP, PROTOCOLS, SIMPLE, protocol_for_path


def test_each_protocol_has_one_error_shape() -> None:
    assert SIMPLE.error("no") == {"detail": "no"}
    assert OIP.error("no") == {"error": "no"}
    assert len({p.error_schema for p in PROTOCOLS}) == len(PROTOCOLS)


def test_paths_belong_to_the_protocol_of_their_prefix() -> None:
    assert protocol_for_path("/v2") is OIP
    assert protocol_for_path("/v2/models/x/infer") is OIP
    assert protocol_for_path("/v2x") is SIMPLE
    assert protocol_for_path("/predict") is SIMPLE
    assert protocol_for_path("/") is SIMPLE
