"""``minigate demo``: every provider × channel end to end, exit 0 only if all ended well."""

from __future__ import annotations

import io

from minigate.demo import CASES, DemoCase, run_demo


async def test_every_row_ends_partially_refunded() -> None:
    out = io.StringIO()
    assert await run_demo(out) == 0
    text = out.getvalue()
    rows = [line.split() for line in text.splitlines() if line.endswith(" ok")]
    assert {(r[0], r[1]) for r in rows} == {(c.title, c.channel) for c in CASES}
    assert {("latipay", "wechat"), ("latipay", "alipay"), ("qfpay", "wechat"),
            ("cbtis", "wechat")} <= {(r[0], r[1]) for r in rows}
    assert all("partially_refunded" in r and "succeeded" in r for r in rows)
    assert f"{len(CASES)}/{len(CASES)} flows ended as expected" in text


async def test_a_row_that_does_not_end_as_expected_fails_the_demo() -> None:
    out = io.StringIO()
    full_refund = DemoCase("latipay", "wechat", "NZD", "12.30", "12.30")  # ends "refunded"
    refused = DemoCase("qfpay", "alipay", "HKD", "10.00", "1.00")  # QFPay: WeChat only
    good = DemoCase("qfpay", "wechat", "HKD", "8.00", "3.00")
    assert await run_demo(out, [full_refund, refused, good]) == 1
    text = out.getvalue()
    assert text.count("FAILED") == 2 and "1/3 flows ended as expected" in text
