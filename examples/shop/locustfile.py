"""Traffic for the example shop service: weighted routes, injected errors, slow requests.

Usable on its own against any running shop, local or deployed::

    locust -f examples/shop/locustfile.py --host http://127.0.0.1:8000
    locust -f examples/shop/locustfile.py --headless -u 20 -r 20 -t 3m \\
        --host https://shop.example.com --error-rate 0.001 --slow-rate 0.02 \\
        --burst-at 60 --burst-seconds 60 --burst-error-rate 0.3

The shop answers 500 to ``?fail=true`` and sleeps for ``?delay=SECONDS`` on the routes
that accept them (``GET /items/{item_id}`` and ``POST /orders``), so the options below
decide how many requests to those routes fail or are slow:

``--error-rate``        share of requests asking for a failure outside the burst
``--slow-rate``         share of requests asking for a ``--slow-seconds`` delay
``--burst-at``          seconds after the start when the error burst begins
``--burst-seconds``     how long it lasts (0: until the end of the run)
``--burst-error-rate``  share of requests asking for a failure during it (0: no burst)

Each option can also come from the environment (``LOCUST_ERROR_RATE`` and so on), and
all of them show in Locust's web UI. Requests are named by route template, so Locust's
statistics line up with the ``route`` label of the service's metrics.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from locust import HttpUser, between, events, task

__all__ = ["Misbehaviour", "ShopUser"]

ITEM_IDS = (1, 2, 3)
MISSING_ITEM_ID = 999
USERS = ("ada", "grace", "linus", "barbara")
TENANTS = ("acme", "globex", "initech")


@dataclass(frozen=True, slots=True)
class Misbehaviour:
    """What share of requests should fail or be slow, and when the error burst runs."""

    error_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 0.3
    burst_at: float = 0.0
    burst_seconds: float = 0.0
    burst_error_rate: float = 0.0

    def __post_init__(self) -> None:
        for name in ("error_rate", "slow_rate", "burst_error_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"--{name.replace('_', '-')}={value}: use a share from 0 to 1")
        for name in ("slow_seconds", "burst_at", "burst_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must not be negative")

    def in_burst(self, elapsed_seconds: float) -> bool:
        if self.burst_error_rate <= 0 or elapsed_seconds < self.burst_at:
            return False
        return self.burst_seconds <= 0 or elapsed_seconds < self.burst_at + self.burst_seconds

    def query(self, elapsed_seconds: float, draw: random.Random) -> dict[str, str]:
        """The query parameters for one request sent ``elapsed_seconds`` into the run."""
        params: dict[str, str] = {}
        error_rate = self.burst_error_rate if self.in_burst(elapsed_seconds) else self.error_rate
        if draw.random() < error_rate:
            params["fail"] = "true"
        if self.slow_seconds > 0 and draw.random() < self.slow_rate:
            params["delay"] = f"{self.slow_seconds:g}"
        return params


def _option(name: str, default: float, help_text: str) -> dict[str, Any]:
    return {
        "type": float,
        "default": default,
        "env_var": f"LOCUST_{name.upper()}",
        "help": help_text,
    }


def add_shop_options(parser: Any) -> None:
    parser.add_argument(
        "--error-rate", **_option("error_rate", 0.0, "share of requests that ask to fail")
    )
    parser.add_argument(
        "--slow-rate", **_option("slow_rate", 0.0, "share of requests that ask to be slow")
    )
    parser.add_argument(
        "--slow-seconds", **_option("slow_seconds", 0.3, "delay of a slow request, seconds")
    )
    parser.add_argument(
        "--burst-at", **_option("burst_at", 0.0, "seconds after the start the burst begins")
    )
    parser.add_argument(
        "--burst-seconds", **_option("burst_seconds", 0.0, "burst length, 0 = to the end")
    )
    parser.add_argument(
        "--burst-error-rate",
        **_option("burst_error_rate", 0.0, "share of requests that fail during the burst"),
    )


_run_started = [time.monotonic()]


def remember_start(**_kwargs: Any) -> None:
    _run_started[0] = time.monotonic()


# Registered by call, not as decorators: add_listener is untyped and would untype them.
events.init_command_line_parser.add_listener(add_shop_options)  # type: ignore[no-untyped-call]
events.test_start.add_listener(remember_start)  # type: ignore[no-untyped-call]


def misbehaviour_from(options: Any) -> Misbehaviour:
    return Misbehaviour(
        error_rate=options.error_rate,
        slow_rate=options.slow_rate,
        slow_seconds=options.slow_seconds,
        burst_at=options.burst_at,
        burst_seconds=options.burst_seconds,
        burst_error_rate=options.burst_error_rate,
    )


class ShopUser(HttpUser):
    """A shopper: mostly browsing items, some orders, the odd admin and streaming call."""

    wait_time = between(0.05, 0.25)

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.misbehaviour = misbehaviour_from(options) if options else Misbehaviour()
        self.draw = random.Random()

    def _misbehave(self) -> dict[str, str]:
        return self.misbehaviour.query(time.monotonic() - _run_started[0], self.draw)

    @task(10)
    def view_item(self) -> None:
        item_id = self.draw.choice(ITEM_IDS)
        self.client.get(f"/items/{item_id}", params=self._misbehave(), name="/items/{item_id}")

    @task(1)
    def view_missing_item(self) -> None:
        with self.client.get(
            f"/items/{MISSING_ITEM_ID}", name="/items/{item_id}", catch_response=True
        ) as response:
            # A 404 for an unknown item is the right answer, not a failure of the shop.
            if response.status_code == 404:
                response.success()

    @task(3)
    def place_order(self) -> None:
        self.client.post("/orders", params=self._misbehave(), name="/orders")

    @task(4)
    def view_order(self) -> None:
        order_id = self.draw.randint(1000, 1100)
        self.client.get(f"/orders/{order_id}", name="/orders/{order_id}")

    @task(3)
    def view_user_order(self) -> None:
        user = self.draw.choice(USERS)
        order_id = self.draw.randint(1000, 1100)
        self.client.get(
            f"/api/v1/users/{user}/orders/{order_id}",
            name="/api/v1/users/{user_id}/orders/{order_id}",
        )

    @task(2)
    def home(self) -> None:
        self.client.get("/", name="/")

    @task(1)
    def admin_stats(self) -> None:
        self.client.get("/admin/stats", name="/admin/stats")

    @task(1)
    def admin_tenant(self) -> None:
        tenant = self.draw.choice(TENANTS)
        self.client.get(f"/admin/tenants/{tenant}", name="/admin/tenants/{tenant}")

    @task(1)
    def stream(self) -> None:
        self.client.get("/stream", params={"chunks": "3", "interval": "0.01"}, name="/stream")
