"""Builds the client-facing gRPC server from the service descriptors.

Handlers are built from the .proto descriptors rather than the generated add_*_to_server
helpers, for three reasons: every service etcd has is registered (the ones not built yet answer
UNIMPLEMENTED with a message that says so), errors are mapped to etcd's status codes in one
place, the request size limit answers with the text etcd's gRPC server uses, and a gate
(etcd's interceptors: a learner refuses most RPCs and every stream) sees every call, unary or
streaming, before its handler.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

from cairn.api.rpc_stats import RpcLabels, RpcStats, code_label, rpc_type
from cairn.errors import EtcdError
from cairn.proto import rpc_pb2, v3election_pb2, v3lock_pb2

log = logging.getLogger("cairn.api")

# etcd lets a gRPC message be this much larger than --max-request-bytes.
GRPC_OVERHEAD_BYTES = 512 * 1024

ALL_SERVICES: list[ServiceDescriptor] = [
    *rpc_pb2.DESCRIPTOR.services_by_name.values(),
    *v3lock_pb2.DESCRIPTOR.services_by_name.values(),
    *v3election_pb2.DESCRIPTOR.services_by_name.values(),
]


class _TooLarge:
    """Stands in for a request whose encoded size exceeds the limit."""

    def __init__(self, size: int) -> None:
        self.size = size


def _sized_deserializer(
    cls: type, limit: int, stats: RpcStats, labels: RpcLabels
) -> Callable[[bytes], object]:
    def deserialize(raw: bytes) -> object:
        stats.received_bytes += len(raw)
        stats.msg_received[labels] += 1
        if len(raw) > limit:
            return _TooLarge(len(raw))
        return cls.FromString(raw)

    return deserialize


async def _abort_with(context: grpc.aio.ServicerContext, error: EtcdError) -> None:
    await context.abort(grpc.StatusCode[error.code], error.message)


Gate = Callable[[str, object], None]
"""Called with the full method name and the request (None for a client stream: the gate runs
before any message is read) of every call; raises EtcdError to refuse the call before its
handler runs. etcd's stream interceptor does the same for streams (a learner refuses them)."""


def _unary(
    fn: Callable[[Any, Any], Any], limit: int, method: str, gate: Gate | None
) -> Callable[[Any, grpc.aio.ServicerContext], Any]:
    async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            _refuse_too_large(request, limit)
            if gate is not None:
                gate(method, request)
            return await fn(request, context)
        except EtcdError as error:
            await _abort_with(context, error)

    return handle


class ErrMessageTooLarge(EtcdError):
    """A request (or a message on a client stream) exceeded the limit: Go gRPC's text."""

    code = "RESOURCE_EXHAUSTED"


def _refuse_too_large(request: object, limit: int) -> None:
    if isinstance(request, _TooLarge):
        raise ErrMessageTooLarge(
            f"grpc: received message larger than max ({request.size} vs. {limit})"
        )


async def _checked(requests: AsyncIterator[Any], limit: int) -> AsyncIterator[Any]:
    async for request in requests:
        _refuse_too_large(request, limit)
        yield request


def _streaming(
    fn: Callable[[Any, Any], Any], limit: int, method: str, gate: Gate | None, client_stream: bool
) -> Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]:
    """Gate and error mapping for a streaming handler.

    The handler may be an async generator of responses or a coroutine writing with
    context.write(); either way an EtcdError it raises ends the stream with etcd's status.
    """

    async def handle(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        if client_stream:
            request = _checked(request, limit)
        try:
            if not client_stream:
                _refuse_too_large(request, limit)
            if gate is not None:
                gate(method, None if client_stream else request)
            result = fn(request, context)
            if inspect.isawaitable(result):
                await result
                return
            async for response in result:
                yield response
        except EtcdError as error:
            await _abort_with(context, error)

    return handle


def _counting_serializer(
    serialize: Callable[[Any], bytes], stats: RpcStats, labels: RpcLabels
) -> Callable[[Any], bytes]:
    def counted(response: Any) -> bytes:
        data = serialize(response)
        stats.sent_bytes += len(data)
        stats.msg_sent[labels] += 1
        return data

    return counted


def _status_of(context: grpc.aio.ServicerContext, error: BaseException) -> str:
    if isinstance(error, asyncio.CancelledError):
        return "Canceled"
    code = context.code()
    if isinstance(code, grpc.StatusCode) and code is not grpc.StatusCode.OK:
        return code_label(code)
    return "Unknown"


def _counted_unary(
    fn: Callable[..., Any], stats: RpcStats, labels: RpcLabels
) -> Callable[..., Any]:
    """go-grpc-prometheus' unary interceptor: started, then handled with the status code."""

    async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
        stats.started[labels] += 1
        started = time.monotonic()
        code = "OK"
        try:
            return await fn(request, context)
        except BaseException as error:
            code = _status_of(context, error)
            raise
        finally:
            _handled(stats, labels, code, started)

    return handle


def _counted_stream(
    fn: Callable[..., AsyncIterator[Any]], stats: RpcStats, labels: RpcLabels
) -> Callable[..., AsyncIterator[Any]]:
    """The stream interceptor: handled when the stream ends, however it ends."""

    async def handle(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        stats.started[labels] += 1
        started = time.monotonic()
        code = "OK"
        try:
            async for response in fn(request, context):
                yield response
        except BaseException as error:
            code = _status_of(context, error)
            raise
        finally:
            _handled(stats, labels, code, started)

    return handle


def _handled(stats: RpcStats, labels: RpcLabels, code: str, started: float) -> None:
    stats.handled[(*labels, code)] += 1
    if stats.observe_handling is not None:
        stats.observe_handling(labels, time.monotonic() - started)


def _unimplemented(service: str, method: str) -> Callable[..., Any]:
    message = f"cairn does not implement {service}.{method} yet"

    async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, message)

    return handle


def _handler(
    method: MethodDescriptor,
    impl: object | None,
    limit: int,
    gate: Gate | None,
    stats: RpcStats,
) -> grpc.RpcMethodHandler:
    request_cls = message_factory.GetMessageClass(method.input_type)
    response_cls = message_factory.GetMessageClass(method.output_type)
    fn = getattr(impl, method.name, None) if impl is not None else None
    streaming = (method.client_streaming, method.server_streaming)
    labels = (rpc_type(*streaming), method.containing_service.full_name, method.name)
    deserialize = _sized_deserializer(request_cls, limit, stats, labels)
    serialize = _counting_serializer(response_cls.SerializeToString, stats, labels)
    full_name = f"/{method.containing_service.full_name}/{method.name}"
    if fn is None:
        fn = _unimplemented(method.containing_service.name, method.name)
        if streaming != (False, False):
            fn = _streaming(fn, limit, full_name, None, method.client_streaming)
    elif streaming == (False, False):
        fn = _unary(fn, limit, full_name, gate)
    else:
        fn = _streaming(fn, limit, full_name, gate, method.client_streaming)
    if streaming == (False, False):
        fn = _counted_unary(fn, stats, labels)
    else:
        fn = _counted_stream(fn, stats, labels)
    factory = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[streaming]
    return factory(fn, request_deserializer=deserialize, response_serializer=serialize)


def build_server(
    implementations: dict[str, object],
    max_request_bytes: int,
    gate: Gate | None = None,
    stats: RpcStats | None = None,
) -> grpc.aio.Server:
    """A server with every etcd service; `implementations` maps full service names to objects.

    Every call is counted in `stats` (a fresh, unexported RpcStats when None)."""
    if stats is None:
        stats = RpcStats()
    limit = max_request_bytes + GRPC_OVERHEAD_BYTES
    server = grpc.aio.server(
        options=[
            # Let larger messages through to our own check, which answers with etcd's text;
            # far larger ones are refused by gRPC itself.
            ("grpc.max_receive_message_length", limit * 2 + 1024 * 1024),
            ("grpc.max_send_message_length", 2**31 - 1),
            ("grpc.so_reuseport", 0),
        ]
    )
    handlers = []
    for service in ALL_SERVICES:
        impl = implementations.get(service.full_name)
        methods = {m.name: _handler(m, impl, limit, gate, stats) for m in service.methods}
        handlers.append(grpc.method_handlers_generic_handler(service.full_name, methods))
    server.add_generic_rpc_handlers(handlers)
    return server
