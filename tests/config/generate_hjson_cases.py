"""Writes tests/config/cases/hjson_cases.json: config texts and what DeepSpeed's loader reads from each.

DeepSpeed reads a config file with hjson.load(f, object_pairs_hook=dict_raise_error_on_duplicate_keys)
(runtime/config.py). This runs that on texts chosen for hjson's corners, so that hjson_test.cc can hold
frontend/config/hjson.cc to it. Run with hjson-py and a DeepSpeed checkout importable:

    PYTHONPATH=<DeepSpeed checkout> python tests/config/generate_hjson_cases.py

With --fuzz SEED N FILE it writes N random texts (fragments and mutated configs) instead, for a
differential run: DSC_HJSON_CASES=FILE build/tests/config/config_parse_test --gtest_filter='Hjson.*'
"""
import json, os, random, sys

import hjson
from deepspeed.runtime.config_utils import dict_raise_error_on_duplicate_keys

TEXTS = [
    # JSON and DeepSpeed's documented extras
    '{"train_batch_size": 8, "fp16": {"enabled": true}}',
    '{\n  # hash\n  "a": 1, // line\n  /* block */ "b": [1, 2,],\n}',
    '{"a": "x//y#z/*w*/"}',
    '{\n"train_batch_size": 8\n"fp16": {}}',
    '{"a": 1,, "b": 2}',
    '{"a": 1 "b": 2}',
    '{"a": [1 2 3]}',
    '{"a": [1,\n2\n3]}',
    # quoteless keys and values
    '{\n  train_batch_size: 16\n  optimizer: {\n    type: Adam\n    params: { lr: 1e-3, betas: [0.9, 0.999] }\n  }\n}',
    '{path: /tmp/x # not a comment}\n}',
    '{\npath: /tmp/x # not a comment\n}',
    '{\nx: a, y: 2\n}',
    '{x: 1, y: 2}',
    '{\nx: true1\ny: nulls\nz: false # c\nw: null\n}',
    '{\nx: true false\n}',
    '{x: [a, b]}',
    '{x: [1, b]}',
    '{\nx: [\n a\n b c\n 3\n]\n}',
    '{x: {y: 1}}',
    '{a#b: 1}',
    '{a b: 1}',
    '{a   : 1}',
    '{: 1}',
    '{a: }',
    '{a: ]}',
    '{a, b: 1}',
    '{"a": 1',
    '[1, 2',
    '{"a": [',
    '{"a":',
    # numbers as hjson-py reads them
    '{\na: 2.0\nb: 1e3\nc: 1.5\nd: 1e10\ne: 9999999999.0\nf: -0.0\ng: -0\nh: 2e-5\ni: 1E+2\n}',
    '{"a": 2.0, "b": 1e3, "c": -3.000, "d": 0.1}',
    '{\na: 01\nb: 1.\nc: .5\nd: +1\ne: 1e\nf: -\ng: 0x10\nh: 1_000\n}',
    '{\na: 1 \t\nb:  2  # c\nc: 3 // c\nd: 4 /* c */\n}',
    '{\na: NaN\nb: Infinity\nc: -Infinity\n}',
    '{"a": 1e400}',
    '{"a": -1e400}',
    '{"a": 1e-400}',
    '{"a": 18446744073709551615, "b": -9223372036854775808}',
    # strings
    "{'a': 'it''s', \"b\": 'say \"hi\"'}",
    "{'a': 'x\\'y', 'b': \"x\\\"y\"}",
    '{"a": "\\u00e9\\u0041\\ud83d\\ude00", "b": "\\/\\b\\f\\n\\r\\t"}',
    '{"a": "\\x41"}',
    '{"a": "\\u12"}',
    '{"a": "\\u0x41"}',
    '{"a": "tab\there"}',
    '{"a": "line\nbreak"}',
    '{"a": "open}',
    '{\n  a:\n    \'\'\'\n    first\n      indented\n    last\n    \'\'\'\n}',
    "{\na: '''one line'''\n}",
    "{\na: '''x'' y'''\n}",
    "a: '''x'''",
    '{\n  a: " padded "  \n}',
    '{\n  a: \u00a0nbsp\u00a0\n}',
    '{\n  "\u00e9t\u00e9": "\u00e9"\n}',
    # root forms
    'a: 1\nb: [1, 2]\nc: {d: x}',
    'train_batch_size: 4\nfp16: {enabled: true}\n',
    '',
    '   \n  ',
    '# only a comment\n',
    '/* only */',
    '5',
    '"text"',
    '[]',
    'true',
    '{} extra',
    '{}\n# trailing comment\n',
    '{} {}',
    '\ufeff{"a": 1}',
    '\ufeff',
    # comments at every place
    '{ /*c*/ "a" /*c*/ : /*c*/ 1 /*c*/ , /*c*/ }',
    '{"a": 1 /* open',
    '{"a": 1} /*',
    '{"a": 1} //',
    '{\r\n  a: 1\r\n  b: two\r\n}\r\n',
    # duplicate keys (DeepSpeed's hook)
    '{"a": 1, "a": 2}',
    '{"z": {"s": 1, "s": 1}, "b": 2}',
    '{"a": 1, "b": {"c": 1, "c": 2}, "a": 3}',
    'a: 1\na: 2',
    '{"a": [{"k": 1, "k": 2}]}',
    # Python's rstrip() of a quoteless key takes Unicode spaces too
    'nul\u00a0 : 1E-2',
    '\u00a0 : 1',
]

FRAGMENTS = ['{', '}', '[', ']', ',', ':', ' ', '\n', '\t', '\r\n', '#c', '//c', '/*c*/', '/*', '"a"', "'b'", 'k', 'abc', 'x y',
             '1', '-0.5', '2.0', '1e3', '1e400', '01', '.5', 'true', 'false', 'null', 'nul', "'''", '\\u00e9', '"\\u00e9"',
             '"\\ud83d\\ude00"', '"\\x"', '\u00a0', '\u00e9', '0', '-', '9999999999.5', '10000000000.0', '1E-2', '"', "'", '\\',
             '"a\\"b"', ' : ', ': ', '\n  ', '}\n', '{\n', 'a: 1\n', 'b: x\n']
BASES = [TEXTS[0], TEXTS[8], 'a: 1\nb: [1, 2,]\n# c\nc: {d: x\n}\n', "{\n a:\n  '''\n  x\n   y\n  '''\n}"]


def fuzz_texts(seed, n):
    rng = random.Random(seed)
    for _ in range(n):
        if rng.random() < 0.5:
            yield ''.join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 25)))
            continue
        t = list(rng.choice(BASES))
        for _ in range(rng.randint(1, 4)):
            op, p = rng.random(), rng.randrange(len(t) + 1)
            if op < 0.4 and t:
                del t[min(p, len(t) - 1)]
            else:
                t.insert(p, rng.choice(FRAGMENTS) if op < 0.8 else chr(rng.randint(0, 127)))
        yield ''.join(t)


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases", "hjson_cases.json")
    texts = TEXTS
    if sys.argv[1:2] == ["--fuzz"]:
        texts, out = fuzz_texts(int(sys.argv[2]), int(sys.argv[3])), sys.argv[4]
    cases = []
    for text in texts:
        case = {"text": text}
        try:
            case["value"] = hjson.loads(text, object_pairs_hook=dict_raise_error_on_duplicate_keys)
            json.dumps(case["value"], allow_nan=False)
        except RecursionError:
            continue
        except Exception as e:  # the exception DeepSpeed's loader raises for this text
            case.pop("value", None)
            case["error"] = type(e).__name__
            case["message"] = str(e)
        cases.append(case)
    with open(out, "w") as f:
        json.dump({"generator": "tests/config/generate_hjson_cases.py", "hjson": hjson.__version__,
                   "cases": cases}, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print("%d cases -> %s" % (len(cases), out))


if __name__ == "__main__":
    sys.exit(main())
