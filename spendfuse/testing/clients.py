"""Real SDK clients wired to the fake, over a mock transport or a loopback base URL.

The SDKs are optional dependencies of spendfuse, so they are imported only when asked for.
Defaults: ``api_key="test-key"`` (unless another credential is given), ``max_retries=0`` (a
scripted error reaches the test at once), and a base URL under the reserved ``.invalid`` domain
for the mock transport, so a mis-wired client can never reach a real host.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import anthropic
    import httpx2
    import openai

ANTHROPIC_MOCK_BASE_URL = "http://anthropic.fake.invalid"
OPENAI_MOCK_BASE_URL = "http://openai.fake.invalid/v1"

# The Anthropic SDK refuses more than one credential argument.
_ANTHROPIC_CREDENTIALS = ("api_key", "auth_token", "credentials", "config", "profile")


def _anthropic_kwargs(kwargs: dict[str, Any], base_url: str) -> dict[str, Any]:
    if not any(kwargs.get(name) is not None for name in _ANTHROPIC_CREDENTIALS):
        kwargs["api_key"] = "test-key"
    kwargs.setdefault("base_url", base_url)
    kwargs.setdefault("max_retries", 0)
    return kwargs


def _openai_kwargs(kwargs: dict[str, Any], base_url: str) -> dict[str, Any]:
    kwargs.setdefault("api_key", "test-key")
    kwargs.setdefault("base_url", base_url)
    kwargs.setdefault("max_retries", 0)
    return kwargs


def uses_httpx2(sdk_name: str) -> bool:
    """Whether the installed SDK is built on httpx2 (newer releases) or the original httpx."""
    import importlib

    sdk = importlib.import_module(sdk_name)
    return type(sdk.DefaultHttpxClient).__module__.startswith("httpx2") or any(
        base.__module__.startswith("httpx2") for base in getattr(sdk.DefaultHttpxClient, "__mro__", ())
    )


def _with_transport(kwargs: dict[str, Any], transport: Any, sdk: Any, *, asynchronous: bool) -> dict[str, Any]:
    if "http_client" in kwargs:
        return kwargs
    client_class = sdk.DefaultAsyncHttpxClient if asynchronous else sdk.DefaultHttpxClient
    if transport is not None:
        kwargs["http_client"] = client_class(transport=transport)
    else:
        # Loopback is plain http; skipping the CA bundle load saves ~0.1 s per client.
        kwargs["http_client"] = client_class(verify=False)
    return kwargs


def anthropic_client(
    *, transport: httpx2.BaseTransport | None = None, base_url: str = ANTHROPIC_MOCK_BASE_URL, **kwargs: Any
) -> anthropic.Anthropic:
    import anthropic

    _with_transport(kwargs, transport, anthropic, asynchronous=False)
    return anthropic.Anthropic(**_anthropic_kwargs(kwargs, base_url))


def async_anthropic_client(
    *,
    transport: httpx2.AsyncBaseTransport | None = None,
    base_url: str = ANTHROPIC_MOCK_BASE_URL,
    **kwargs: Any,
) -> anthropic.AsyncAnthropic:
    import anthropic

    _with_transport(kwargs, transport, anthropic, asynchronous=True)
    return anthropic.AsyncAnthropic(**_anthropic_kwargs(kwargs, base_url))


def openai_client(
    *, transport: httpx2.BaseTransport | None = None, base_url: str = OPENAI_MOCK_BASE_URL, **kwargs: Any
) -> openai.OpenAI:
    import openai

    _with_transport(kwargs, transport, openai, asynchronous=False)
    return openai.OpenAI(**_openai_kwargs(kwargs, base_url))


def async_openai_client(
    *, transport: httpx2.AsyncBaseTransport | None = None, base_url: str = OPENAI_MOCK_BASE_URL, **kwargs: Any
) -> openai.AsyncOpenAI:
    import openai

    _with_transport(kwargs, transport, openai, asynchronous=True)
    return openai.AsyncOpenAI(**_openai_kwargs(kwargs, base_url))
