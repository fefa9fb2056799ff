"""Issue 19, cold attack F6: GGUF chat templates that build dunder names at render time.

The attack template evades a regular expression (``"%c%c"|format(95,95)`` makes ``__`` when rendered, and
subscripts reach attributes); rendered by a plain ``jinja2.Environment`` it runs a shell command. Each bypass
is checked against Jinja itself (the plain render really escapes; the sandbox refuses) and the scanner; the
chat templates of common model families must still pass.
"""

from __future__ import annotations

import struct

import jinja2
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from bastion.scan import scan_bytes
from bastion.scan._formats.jinja import template_risk

pytestmark = pytest.mark.timeout(60)

ATTACK = (
    '{% set u = "%c%c"|format(95,95) %}{% set g = cycler[u~"init"~u][u~"glob"~"als"~u] %}'
    '{{ g["o"~"s"]["pop"~"en"]("touch MARKER")["read"]() }}{{ messages[0]["content"] }}'
)
# each reaches Python internals under a plain Environment (checked below with a harmless probe)
BYPASSES = {
    "format": '{% set u = "%c%c"|format(95,95) %}{{ cycler[u~"init"~u][u~"glob"~"als"~u]["o"~"s"].name }}',
    "escapes": '{{ cycler["\\x5f\\x5finit\\x5f\\x5f"]["\\x5f\\x5fglobals\\x5f\\x5f"]["os"].name }}',
    "joined": '{% set u = ["_","_"]|join %}{{ joiner[u~"init"~u][u~"globals"~u]["os"].name }}',
    "percent": '{% set u = "%s%s" % ("_","_") %}{{ lipsum[u~"globals"~u]["os"].name }}',
    "namespace": '{% set u = "%c%c"|format(95,95) %}{{ namespace[u~"init"~u][u~"globals"~u]["os"].name }}',
    "attr-filter": '{% set u = "%c%c"|format(95,95) %}'
    '{{ (cycler|attr(u~"init"~u)|attr(u~"globals"~u)).os.name }}',
    "loop": "{% for x in [1] %}{{ loop.__class__ }}{% endfor %}",
}
BENIGN = {
    "chatml": "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] "
    "+ '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{% endif %}",
    "llama3": "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + "
    "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{% endif %}",
    "mistral": "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != "
    "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% endif %}{% endfor %}",
    "gemma": "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('no system') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'assistant') %}"
    "{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\\n' + "
    "message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}",
    "tools-namespace": "{%- set ns = namespace(found=false) -%}{%- for message in messages -%}"
    "{%- if message.role == 'system' -%}{%- set ns.found = true -%}{%- endif -%}{%- endfor -%}"
    "{%- for message in messages[1:] %}{%- if message.tool_calls %}{%- for tool_call in message.tool_calls %}"
    "{%- if tool_call.function is defined %}{%- set tool_call = tool_call.function %}{%- endif %}"
    "{{- tool_call.name }}{{- tool_call.arguments | tojson }}{%- endfor %}{%- endif %}{%- endfor %}"
    "{%- if not ns.found and loop is undefined -%}{{ messages[loop_index|default(0)]['content'] }}"
    "{%- endif -%}",
}


def _gguf(template: str, key: str = "tokenizer.chat_template") -> bytes:
    def s(x: str) -> bytes:
        raw = x.encode()
        return struct.pack("<Q", len(raw)) + raw

    kv = s("general.architecture") + struct.pack("<I", 8) + s("llama")
    kv += s(key) + struct.pack("<I", 8) + s(template)
    data = b"GGUF" + struct.pack("<I", 3) + struct.pack("<Q", 0) + struct.pack("<Q", 2) + kv
    return data + b"\0" * (-len(data) % 32)


def test_the_attack_template_runs_unsandboxed_and_is_flagged(tmp_path) -> None:
    marker = tmp_path / "pwned"
    template = ATTACK.replace("MARKER", str(marker))
    jinja2.Environment().from_string(template).render(messages=[{"content": "hi"}])
    assert marker.exists()  # the attack is real
    with pytest.raises(SecurityError):
        ImmutableSandboxedEnvironment().from_string(template).render(messages=[{"content": "hi"}])
    report = scan_bytes(_gguf(template))
    assert [i.rule for i in report.issues] == ["gguf-template-injection"]


@pytest.mark.parametrize("name", sorted(BYPASSES))
def test_bypasses_reach_internals_and_are_flagged(name) -> None:
    template = BYPASSES[name]
    out = jinja2.Environment().from_string(template).render(messages=[{"content": "hi"}])
    assert "posix" in out or "class" in out  # reached os (os.name) or a class under a plain Environment
    assert template_risk(template) is not None
    assert scan_bytes(_gguf(template, "tokenizer.chat_template.tool_use")).issues


@pytest.mark.parametrize("name", sorted(BENIGN))
def test_common_chat_templates_pass(name) -> None:
    template = BENIGN[name]
    ImmutableSandboxedEnvironment().from_string(template).render(
        messages=[{"role": "user", "content": "hi"}], bos_token="<s>", eos_token="</s>", raise_exception=str
    )
    assert template_risk(template) is None
    assert not scan_bytes(_gguf(template)).issues


def test_unparseable_template_is_flagged() -> None:
    assert template_risk("{% for x in %}") is not None
