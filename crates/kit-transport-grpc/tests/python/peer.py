"""A Python grpcio peer for the kit-transport-grpc tests: a client of a kit server, or a server
for a kit client, over the Echo service of proto/kittest.proto.

    python peer.py client HOST:PORT   runs the client checks and prints "ok" (exit 1 on failure)
    python peer.py server PORT        serves Echo on 127.0.0.1:PORT until killed; prints "ready"

The stubs are generated at start with grpc_tools.protoc into a temporary directory.
"""
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.path.join(HERE, "..", "..", "proto")


def stubs():
    out = tempfile.mkdtemp(prefix="kit-grpc-py-")
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", PROTO_DIR,
         "--python_out", out, "--grpc_python_out", out,
         os.path.join(PROTO_DIR, "kittest.proto")],
        check=True,
    )
    sys.path.insert(0, out)
    import kittest_pb2
    import kittest_pb2_grpc
    return kittest_pb2, kittest_pb2_grpc


def check(cond, what):
    if not cond:
        print("FAILED: " + what, flush=True)
        sys.exit(1)


def run_client(target):
    import grpc
    pb, pb_grpc = stubs()
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.EchoStub(channel)
        # Metadata both ways: x-tenant in, x-served-by back as initial metadata.
        reply, call = stub.Say.with_call(
            pb.SayRequest(text="py", times=2), metadata=[("x-tenant", "python")], timeout=10)
        check(reply.text == "pypy#set", "reply text %r" % reply.text)
        check(reply.tenant == "python", "tenant %r" % reply.tenant)
        served = dict(call.initial_metadata()).get("x-served-by")
        check(served == "kit", "x-served-by %r" % served)
        # A trailer set by the kit server's after hook, on a successful call.
        reply_count = dict(call.trailing_metadata()).get("x-reply-bytes")
        check(reply_count == "4", "x-reply-bytes trailer %r" % reply_count)
        # Status codes: real ones, and the kit kind in a trailer.
        for code, status in [("notfound", grpc.StatusCode.NOT_FOUND),
                             ("invalid", grpc.StatusCode.INVALID_ARGUMENT),
                             ("business", grpc.StatusCode.FAILED_PRECONDITION),
                             ("unavailable", grpc.StatusCode.UNAVAILABLE)]:
            try:
                stub.Say(pb.SayRequest(text="fail:" + code, times=1), timeout=10)
                check(False, code + " did not fail")
            except grpc.RpcError as err:
                check(err.code() == status, "%s: %s" % (code, err.code()))
                kinds = dict(err.trailing_metadata() or ()).get("kit-error-kind")
                check(kinds is not None, code + ": no kit-error-kind trailer")
        # A deadline: the server gives up, the Python client sees DEADLINE_EXCEEDED. Both ends
        # watch the same deadline, so the server's answer races the client's own timer, and a
        # stream that ends just as the deadline passes may be reported CANCELLED (gRPC over
        # HTTP/2 makes DEADLINE_EXCEEDED best effort there; its clients are told to check the
        # deadline on CANCELLED, as this does): CANCELLED passes only once the deadline is past.
        started = time.monotonic()
        try:
            stub.Say(pb.SayRequest(text="sleep:60000", times=1), timeout=0.3)
            check(False, "the deadline did not end the call")
        except grpc.RpcError as err:
            took = time.monotonic() - started
            check(err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
                  or (err.code() == grpc.StatusCode.CANCELLED and took >= 0.25),
                  "deadline: %s after %.3f s" % (err.code(), took))
        check(time.monotonic() - started < 30, "the call outlived its deadline by far")
    print("ok", flush=True)


def run_server(port):
    import grpc
    from concurrent import futures
    pb, pb_grpc = stubs()

    class Echo(pb_grpc.EchoServicer):
        def Say(self, request, context):
            md = dict(context.invocation_metadata())
            if request.text.startswith("fail:"):
                code = getattr(grpc.StatusCode, request.text[5:].upper())
                context.abort(code, "python says " + request.text[5:])
            if request.text.startswith("sleep:"):
                time.sleep(int(request.text[6:]) / 1000.0)
            remaining = context.time_remaining()
            context.send_initial_metadata([("x-served-by", "python")])
            deadline = "set" if remaining is not None and remaining < 3600 else "none"
            return pb.SayReply(text=request.text * request.times + "#" + deadline,
                               tenant=md.get("x-tenant", ""))

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    pb_grpc.add_EchoServicer_to_server(Echo(), server)
    server.add_insecure_port("127.0.0.1:%s" % port)
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    if sys.argv[1] == "client":
        run_client(sys.argv[2])
    else:
        run_server(sys.argv[2])
