"""A require-leader watch stream (etcdctl's, clientv3's WithRequireLeader) ends with etcd's
`no leader` once its member has been without a leader for three election timeouts, so the
client moves to a member in touch with the cluster; a stream without the metadata stays."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
from tests.cluster.test_partitions import NAMES, Cluster, free_port

from cairn.api.grpc_server import build_server
from cairn.api.services import etcd_services
from cairn.proto import rpc_pb2 as pb
from cairn.proto import rpc_pb2_grpc


async def _requests() -> AsyncIterator[pb.WatchRequest]:
    yield pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b"k"))
    await asyncio.Event().wait()


def test_a_require_leader_stream_ends_with_no_leader_on_an_isolated_leader(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        cluster = Cluster(tmp_path)
        await cluster.start()
        leader = await cluster.leader_among(list(NAMES))
        address = f"127.0.0.1:{free_port()}"
        server = build_server(
            etcd_services(leader, [f"http://{address}"]), leader.config.max_request_bytes
        )
        server.add_insecure_port(address)
        await server.start()
        try:
            async with grpc.aio.insecure_channel(address) as channel:
                stub = rpc_pb2_grpc.WatchStub(channel)
                strict = stub.Watch(_requests(), metadata=(("hasleader", "true"),))
                lenient = stub.Watch(_requests())
                assert (await strict.read()).created
                assert (await lenient.read()).created
                cluster.isolate(leader.identity.name)
                started = asyncio.get_running_loop().time()
                try:
                    await asyncio.wait_for(strict.read(), 10)
                    raise AssertionError("the require-leader stream sent a response")
                except grpc.aio.AioRpcError as ended:
                    assert ended.code() is grpc.StatusCode.UNAVAILABLE
                    assert ended.details() == "etcdserver: no leader"
                # check-quorum step-down (~1 election timeout) + 3 election timeouts of 0.2 s
                assert asyncio.get_running_loop().time() - started >= 0.6
                assert leader.leader == 0
                read = asyncio.ensure_future(lenient.read())
                done, _ = await asyncio.wait([read], timeout=0.5)
                assert not done, "the stream without require-leader ended too"
                read.cancel()
                lenient.cancel()
        finally:
            await server.stop(0)
            await cluster.stop()

    asyncio.run(asyncio.wait_for(main(), 60))
