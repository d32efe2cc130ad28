#!/usr/bin/python3
"""Generic tools can see rawfeatd: gRPC server reflection lists the API
(grpc.reflection.v1alpha), and the health service (grpc.health.v1) says
SERVING, then NOT_SERVING while the server drains for shutdown.

Talks raw bytes (hand-encoded protobuf) over Debian's python3-grpcio, so it
needs neither grpcio-reflection nor grpcio-health-checking.

Usage: introspection_test.py RAWFEATD
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import grpc

RAWFEATD = sys.argv[1]


def raw(channel, method, stream=False):
    kind = channel.stream_stream if stream else channel.unary_unary
    return kind(method, request_serializer=lambda b: b,
                response_deserializer=lambda b: b)


def health(channel):
    """The overall status: 1 SERVING, 2 NOT_SERVING (HealthCheckResponse's
    field 1), or the gRPC error code."""
    try:
        reply = raw(channel, "/grpc.health.v1.Health/Check")(b"", timeout=10)
    except grpc.RpcError as err:
        return err.code()
    return reply[1] if reply[:1] == b"\x08" else 0


class IntrospectionTest(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="rawfeat-introspection-")
        port_file = os.path.join(self.work, "port")
        self.server = subprocess.Popen(
            [RAWFEATD, "--listen=127.0.0.1:0",
             "--data_dir=" + os.path.join(self.work, "data"),
             "--port_file=" + port_file, "--shutdown_drain_seconds=120"],
            stderr=subprocess.DEVNULL)
        port = ""
        for _ in range(600):
            if os.path.exists(port_file):
                with open(port_file) as f:
                    port = f.read().strip()
                if port:
                    break
            time.sleep(0.05)
        self.channel = grpc.insecure_channel("127.0.0.1:" + port)

    def tearDown(self):
        self.channel.close()
        self.server.kill()
        self.server.wait(timeout=30)
        shutil.rmtree(self.work, ignore_errors=True)

    def test_reflection_lists_the_service(self):
        # ServerReflectionRequest{list_services: "*"} (field 7).
        replies = list(raw(self.channel,
                           "/grpc.reflection.v1alpha.ServerReflection/"
                           "ServerReflectionInfo", stream=True)(
            iter([b"\x3a\x01*"]), timeout=10))
        self.assertEqual(len(replies), 1)
        self.assertIn(b"rawfeat.v1.FeatureStore", replies[0])
        # FileContainingSymbol (field 4): the API's descriptor comes back.
        symbol = b"rawfeat.v1.FeatureStore"
        replies = list(raw(self.channel,
                           "/grpc.reflection.v1alpha.ServerReflection/"
                           "ServerReflectionInfo", stream=True)(
            iter([b"\x22" + bytes([len(symbol)]) + symbol]), timeout=10))
        self.assertIn(b"rawfeat/v1/rawfeat.proto", replies[0])
        self.assertIn(b"JoinFeatures", replies[0])

    def test_health_is_not_serving_while_draining(self):
        self.assertEqual(health(self.channel), 1)
        self.server.send_signal(signal.SIGTERM)
        # The drain lasts 120 s: the server still answers, NOT_SERVING.
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline:
            status = health(self.channel)
            if status == 2:
                break
            time.sleep(0.05)
        self.assertEqual(status, 2)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
