#!/usr/bin/python3
"""A client of a member's (or an observer's) public API in Python, from proto/ alone.

The gRPC stubs are generated from proto/ at start (protoc and grpc_python_plugin, into a
temporary directory: generated code is never kept), and the client talks mutual TLS with an
application certificate the member's CA issued (`btcfed cert issue --client NAME`). It prints one
JSON line per answer: the status, the committed tip's block, and the first blocks of StreamCommits.

Needs Debian's python3 with python3-grpcio and python3-protobuf, and protobuf-compiler and
protobuf-compiler-grpc (scripts/ensure-tools.sh installs them):

    /usr/bin/python3 examples/python/client.py --address 127.0.0.1:7102 \
        --ca apps/m0-ca.pem --cert apps/m0-client-py.pem --key apps/m0-client-py-key.pem
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def generate_stubs() -> str:
    """Generates the Python modules of the public API from proto/ into a fresh directory."""
    plugin = shutil.which("grpc_python_plugin")
    if shutil.which("protoc") is None or plugin is None:
        sys.exit("client.py: needs protoc and grpc_python_plugin (Debian: protobuf-compiler protobuf-compiler-grpc)")
    out = tempfile.mkdtemp(prefix="btcfed-py-")
    subprocess.run(["protoc", "-I", os.path.join(ROOT, "proto"), "--python_out", out, "--grpc_out", out,
                    f"--plugin=protoc-gen-grpc={plugin}", "btcfed/v1/consensus.proto", "btcfed/v1/wire.proto"], check=True)
    return out


def signers(bitmap: bytes) -> list:
    """The validator indices of a QC's signer bitmap (bit i of byte i/8, least significant first)."""
    return [i for i in range(len(bitmap) * 8) if bitmap[i // 8] >> (i % 8) & 1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--address", required=True, help="the member's services.consensus.listen, HOST:PORT")
    p.add_argument("--ca", required=True, help="the member's CA certificate (PEM)")
    p.add_argument("--cert", required=True, help="this application's certificate (PEM)")
    p.add_argument("--key", required=True, help="this application's key (PEM)")
    p.add_argument("--server-name", default="localhost", help="a name in the member's certificate")
    p.add_argument("--stream", type=int, default=3, help="how many blocks of StreamCommits to print")
    a = p.parse_args()

    out = generate_stubs()
    sys.path.insert(0, out)
    try:
        import grpc
        from btcfed.v1 import consensus_pb2 as pb
        from btcfed.v1 import consensus_pb2_grpc as rpc

        def read(path: str) -> bytes:
            with open(path, "rb") as f:
                return f.read()

        creds = grpc.ssl_channel_credentials(root_certificates=read(a.ca), private_key=read(a.key), certificate_chain=read(a.cert))
        options = [("grpc.ssl_target_name_override", a.server_name), ("grpc.max_receive_message_length", 64 << 20)]
        with grpc.secure_channel(a.address, creds, options=options) as channel:
            api = rpc.ConsensusServiceStub(channel)
            s = api.GetStatus(pb.GetStatusRequest(), timeout=10)
            print(json.dumps({"status": {"member": s.member, "chain_id": s.chain_id, "committed_height": s.committed_height,
                                         "committed_hash": s.committed_hash.hex(), "observer": s.observer, "behind": s.behind}}))
            b = api.GetBlock(pb.GetBlockRequest(height=s.committed_height), timeout=10)
            print(json.dumps({"block": {"height": b.block.header.height, "hash": b.block_hash.hex(), "txs": len(b.block.txs),
                                        "qc": {"phase": b.qc.phase, "view": b.qc.view, "signers": signers(b.qc.signers)}}}))
            seen = []
            for r in api.StreamCommits(pb.StreamCommitsRequest(from_height=1, headers_only=True), timeout=30):
                seen.append(r.block.block.header.height)
                if len(seen) >= a.stream:
                    break
            print(json.dumps({"streamed": seen}))
    finally:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
