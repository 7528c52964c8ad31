"""The committed protobuf code is what `make grpc-stubs` generates from the committed .proto files."""

from pathlib import Path

import pytest
from grpc_tools import protoc

PROTOS = Path(__file__).resolve().parents[2] / "server" / "protos"


def test_the_generated_code_is_current(tmp_path: Path) -> None:
    sources = sorted(PROTOS.glob("*.proto"))
    assert [p.name for p in sources] == ["grpc_predict_v2.proto", "health.proto"]
    status = protoc.main(
        ["protoc", f"-I{PROTOS}", f"--python_out={tmp_path}", f"--pyi_out={tmp_path}"]
        + [str(p) for p in sources]
    )
    assert status == 0
    generated = sorted(p.name for p in tmp_path.iterdir())
    assert generated == sorted(p.name for p in PROTOS.glob("*_pb2.py*"))
    for name in generated:
        assert (tmp_path / name).read_bytes() == (PROTOS / name).read_bytes(), (
            f"server/protos/{name} is stale: run `make grpc-stubs`"
        )


@pytest.mark.parametrize("source", ["grpc_predict_v2.proto", "health.proto"])
def test_each_proto_names_its_source(source: str) -> None:
    assert "// Source: " in (PROTOS / source).read_text()
