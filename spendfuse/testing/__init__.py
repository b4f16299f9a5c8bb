"""A fake Anthropic/OpenAI endpoint for testing agents offline with the real SDK clients.

    from spendfuse.testing import FakeProvider, Reply

    fake = FakeProvider()
    fake.enqueue(Reply.tool_call("search", {"q": "weather"}), Reply.text("It is sunny."))
    client = fake.anthropic_client()          # a real anthropic.Anthropic on a mock transport
    ...
    assert fake.request_count == 2

``FakeServer(fake)`` serves the same provider on a loopback port for tests that need real
sockets. Usage numbers follow the deterministic rule documented in ``spendfuse.testing.usage``.
"""

from spendfuse.testing.provider import FakeProvider, Responder
from spendfuse.testing.records import RecordedRequest
from spendfuse.testing.replies import Reply, ToolCall
from spendfuse.testing.server import FakeServer
from spendfuse.testing.usage import FakeUsage

__all__ = ["FakeProvider", "FakeServer", "FakeUsage", "RecordedRequest", "Reply", "Responder", "ToolCall"]
