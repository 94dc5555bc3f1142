#!/usr/bin/env python3
"""Render the chat templates in tests/data/chat/*.jinja with Python's jinja2,
the way Hugging Face transformers' apply_chat_template does
(ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols,
raise_exception), for tests/test_chat_template.c. The expected strings thus
come from the real template texts and an engine the loki team did not write.

  chat_template_ref.py [OUT.json]   write the fixture (default: stdout)
  chat_template_ref.py --probe      exit 0 when jinja2 imports

jinja2 comes from the interpreter, else from wheels in $LOKI_WHEELS (default
~/.cache/loki/wheels: Jinja2-*.whl and MarkupSafe-*.whl, e.g. from
`pip download --no-deps jinja2 markupsafe -d ~/.cache/loki/wheels`).

Template sources (the texts as the models publish them):
  smollm2.jinja  SmolLM2-135M-Instruct, tokenizer.chat_template of the GGUF
                 that scripts/get-models.sh fetches
  chatml.jinja   teknium/OpenHermes-2.5-Mistral-7B (plain ChatML)
  llama2.jinja   meta-llama/Llama-2-7b-chat-hf tokenizer_config.json
  llama3.jinja   meta-llama/Meta-Llama-3-8B-Instruct tokenizer_config.json
  gemma.jinja    google/gemma-7b-it tokenizer_config.json (no system role)
  gemma3.jinja   google/gemma-3-270m-it tokenizer_config.json
"""
import glob
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data", "chat")

# template file -> (bos_token, eos_token) of its model
TEMPLATES = {
    "smollm2": ("<|im_start|>", "<|im_end|>"),
    "chatml": ("<s>", "<|im_end|>"),
    "llama2": ("<s>", "</s>"),
    "llama3": ("<|begin_of_text|>", "<|eot_id|>"),
    "gemma": ("<bos>", "<eos>"),
    "gemma3": ("<bos>", "<eos>"),
}

CONVERSATIONS = {
    "user": [{"role": "user", "content": "Hello"}],
    "system_user": [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "What is 2+2?"},
    ],
    "multi": [
        {"role": "system", "content": "You are a helpful assistant"},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi there"},
        {"role": "user", "content": "Who are you"},
        {"role": "assistant", "content": "   I am an assistant   "},
        {"role": "user", "content": "Another question"},
    ],
    "no_system_multi": [
        {"role": "user", "content": " \tCaf\u00e9 \u00fcber \u65e5\u672c\u8a9e\n"},
        {"role": "assistant", "content": "\u00a0Yes.\u3000"},
        {"role": "user", "content": "Line one\nLine two\n\n"},
    ],
    "not_alternating": [
        {"role": "user", "content": "a"},
        {"role": "user", "content": "b"},
    ],
}


def import_jinja2():
    try:
        import jinja2  # noqa: F401
        return jinja2
    except ImportError:
        pass
    wheels = os.environ.get("LOKI_WHEELS", os.path.expanduser("~/.cache/loki/wheels"))
    for pat in ("MarkupSafe-*.whl", "markupsafe-*.whl", "Jinja2-*.whl", "jinja2-*.whl"):
        for w in sorted(glob.glob(os.path.join(wheels, pat))):
            sys.path.insert(0, w)
    import jinja2
    return jinja2


def main(argv):
    try:
        jinja2 = import_jinja2()
        from jinja2.sandbox import ImmutableSandboxedEnvironment
        from jinja2.ext import loopcontrols
    except Exception as e:  # ImportError, or a wheel for another Python
        print(f"chat_template_ref: cannot import jinja2: {e}", file=sys.stderr)
        return 3
    if argv[1:2] == ["--probe"]:
        print(f"jinja2 {jinja2.__version__}")
        return 0

    def raise_exception(msg):
        raise jinja2.exceptions.TemplateError(msg)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.globals["raise_exception"] = raise_exception
    cases = []
    for name, (bos, eos) in TEMPLATES.items():
        with open(os.path.join(DATA, name + ".jinja"), encoding="utf-8") as f:
            tpl = env.from_string(f.read())
        for conv, msgs in CONVERSATIONS.items():
            for gen in (True, False):
                case = {"template": name, "conversation": conv, "add_generation_prompt": gen}
                try:
                    case["output"] = tpl.render(messages=msgs, bos_token=bos, eos_token=eos,
                                                add_generation_prompt=gen)
                except jinja2.exceptions.TemplateError as e:
                    case["error"] = str(e)
                cases.append(case)
    doc = {
        "generator": "tests/chat_template_ref.py (Python jinja2, as transformers' apply_chat_template)",
        "templates": {k: {"file": k + ".jinja", "bos": v[0], "eos": v[1]} for k, v in TEMPLATES.items()},
        "conversations": CONVERSATIONS,
        "cases": cases,
    }
    print(f"chat_template_ref: rendered {len(cases)} cases with jinja2 {jinja2.__version__}", file=sys.stderr)
    text = json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
    if len(argv) > 1:
        with open(argv[1], "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
