#!/usr/bin/env python3
"""Expected token ids from Hugging Face `tokenizers` for both OLMo tokenizer files.

Writes test/fixtures/tokenizer.json (version 1). Regenerate with:

    pip install tokenizers
    python3 scripts/golden/make_tokenizer_fixtures.py

Corpus:
  - every line of ../shared/data/tinyshakespeare.txt (without its newline), and the file cut into
    chunks of 50 lines (with their newlines). These are stored compactly: per text, the number of ids
    and an FNV-1a hash of them (the test recomputes both; any difference in any id changes the hash);
  - hand-made hard cases, stored with their full ids and `tokenizers`' decoded text.

The two files differ only in ids 0 and 50279, so the ids are stored for the first file and, for the
second, only where they differ.

Lone surrogates: Python's tokenizers refuses strings that hold them (they are not valid UTF-8), while
a JS string may. olmo-js encodes them as U+FFFD, as TextEncoder does; the expected ids for such cases
are `tokenizers`' ids for the text with U+FFFD in their place.
"""
import json
import os
import unicodedata

from tokenizers import Tokenizer

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
DATA = os.path.join(ROOT, "..", "shared", "data")
OUT = os.path.join(ROOT, "test", "fixtures", "tokenizer.json")
FILES = ["allenai_eleuther-ai-gpt-neox-20b-pii-special.json", "allenai_gpt-neox-olmo-dolma-v1_5.json"]


def fnv1a(ids):
    h = 0x811C9DC5
    for i in ids:
        for shift in (0, 8, 16, 24):
            h ^= (i >> shift) & 0xFF
            h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def byte_to_char(b):
    """GPT-2's printable stand-in for byte b (written out independently of the TS implementation)."""
    printable = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    if b in printable:
        return chr(b)
    return chr(256 + [x for x in range(256) if x not in printable].index(b))


def well_formed(s):
    """Lone surrogates -> U+FFFD (what a JS TextEncoder does)."""
    return s.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def hard_cases():
    cases = []
    for ch, name in ((" ", "space"), ("\t", "tab"), ("\n", "newline"), ("\r\n", "crlf")):
        for n in range(1, 31):
            run = ch * n
            cases += [run, f"a{run}b", f"{run}word", f"word{run}", f"x{run}"]
    cases += ["  leading", "trailing  ", "   both   ", " \t\n mixed \n\t ", "\n\n\nparagraph\n\n", "a \n b", "a  \n  b"]
    cases += [
        "生活的真谛是", "日本語のテキストと漢字、カタカナ。", "한국어 텍스트입니다", "中文 English 混合 text",
        "ภาษาไทยเป็นภาษาที่สวยงาม", "ป่   ที่", "العربية لغة جميلة", "مرحبا بالعالم 123", "עברית",
        "Ελληνικά και русский язык", "हिन्दी भाषा",
        "👋🏽 hello 👩‍👩‍👧‍👦 family 🏳️‍🌈 flag 👍🏿 thumbs", "🤷‍♀️🤷🏻‍♂️", "😀😃😄😁", "emoji😊inside",
        "e\u0301 cafe\u0301 A\u030a n\u0303", "\u1100\u1161\u11a8", "Å Å Å", "ﬁ ligature ①②③", "\u0041\u0308\u0304",
        "ctrl\x00\x01\x02\x1b[0m\x7f end", "bell\x07 tab\t vt\x0b ff\x0c", "\u0085nel\u0085", "nbsp\u00a0here\u00a0", "ideo\u3000space",
        "zero\u200bwidth\u200d joiner", "\ufeffbom at start", "bom\ufeffinside", "line\u2028sep\u2029para",
        "0", "7", "42", "123", "2024", "31415", "1234567", "12345678901234567890", "3.14159", "1,000,000", "-273.15",
        "١٢٣ ٤٥٦", "Ⅻ roman", "½ ¾",
        "it's don't they're we've I'm you'll he'd", "IT'S DON'T THEY'RE WE'VE I'M YOU'LL HE'D", "It'S dOn'T",
        "'s 't 're 've 'm 'll 'd", "rock'n'roll", "''quoted''", "’curly’ “quotes”",
        "def f(x):\n    return x * 2\n\nclass A:\n\tpass\n", "if (a && b) {\n        c();\n    }\n",
        "    four spaces\n        eight spaces\n", "x = [1, 2, 3]  # comment", "<div class=\"x\">&amp;</div>",
        "https://github.com/allenai/OLMo?tab=readme#install", "http://example.com:8080/a/b.html", "mailto:someone@example.com",
        "a@b.co 555-123-4567 192.168.0.1",
        "<|endoftext|>", "text<|endoftext|>more", "mid<|endoftext|>word<|padding|>x", "<|endoftext|><|endoftext|>",
        "a <|endoftext|> b", "<|endoftext", "<|padding|>", "|||EMAIL_ADDRESS|||", "contact|||EMAIL_ADDRESS|||now",
        "call|||PHONE_NUMBER|||x", "ip|||IP_ADDRESS|||y", "||||||IP_ADDRESS|||", "mixed <|endoftext|>|||PHONE_NUMBER|||  end",
        "Hello world", "Hello, world!", "HELLO WORLD", "hello\nworld", "The quick brown fox jumps over the lazy dog.",
        "", " ", "a", "Ġ", "ĊĠ", "\\u00e9", "tab\tseparated\tvalues", "...", "!!!???", "—dash–", "©®™",
        "lone \ud800 high", "lone \udc00 low", "\ud83d", "pair \ud83d\ude0a ok", "\udfff\ud800",
    ]
    return cases


def token(id, content, **flags):
    entry = {"id": id, "content": content, "single_word": False, "lstrip": False, "rstrip": False, "normalized": True, "special": False}
    entry.update(flags)
    return entry


EXTRA_ADDED_TOKENS = [
    token(50280, "<mask>", lstrip=True, normalized=False, special=True),
    token(50281, "[SW]", single_word=True),
    token(50282, "<rs>", rstrip=True),  # not in the vocabulary: tokenizers would reuse a vocabulary id
    token(50283, "e\u0301x"),
    token(50284, "<both>", lstrip=True, rstrip=True, single_word=True, normalized=False),
]
FLAG_TEXTS = [
    "a  <mask> b", "<mask>", "x<mask>", "  <mask>", "\t<mask>\n", "the [SW] here", "the[SW] here", "the [SW]here",
    "[SW]", "\u00e9[SW]", "([SW])", "_[SW]", "<rs>   of", "<rs><rs>  x", "<rs>", "x <rs>\n\ny", "\u00e9x and e\u0301x", "a  <both>  b",
    "a<both>b", "<both><both>", " <mask><mask> ",
]


def main():
    tokenizers = [Tokenizer.from_file(os.path.join(DATA, f)) for f in FILES]
    with open(os.path.join(DATA, "tinyshakespeare.txt"), encoding="utf-8") as f:
        text = f.read()
    lines = text.split("\n")
    chunks = ["".join(l + "\n" for l in lines[i : i + 50]) for i in range(0, len(lines), 50)]

    def encode(tok, s):
        return tok.encode(well_formed(s), add_special_tokens=True).ids

    corpus = {}
    for name, texts in (("lines", lines), ("chunks50", chunks)):
        first = [encode(tokenizers[0], t) for t in texts]
        second = [encode(tokenizers[1], t) for t in texts]
        corpus[name] = {
            "count": len(texts),
            "lengths": [len(ids) for ids in first],
            "hashes": [fnv1a(ids) for ids in first],
            "secondFileDiffers": [i for i, (a, b) in enumerate(zip(first, second)) if a != b],
        }

    cases = []
    for s in hard_cases():
        entry = {"text": s, "files": []}
        for tok in tokenizers:
            ids = encode(tok, s)
            decoded = tok.decode(ids, skip_special_tokens=False)
            entry["files"].append(
                {
                    "ids": ids,
                    "decoded": decoded,
                    "decodedSkippingSpecial": tok.decode(ids, skip_special_tokens=True),
                    "roundTrips": decoded == unicodedata.normalize("NFC", well_formed(s)),
                }
            )
        cases.append(entry)

    # Decoding invalid UTF-8: byte tokens that are lone continuation bytes, truncated sequences, 0xFF.
    byte_id = lambda b: tokenizers[0].token_to_id(byte_to_char(b))
    hello = tokenizers[0].encode("Hello").ids
    invalid = [
        [byte_id(0x80)], [byte_id(0xC3)], [byte_id(0xE2), byte_id(0x82)], [byte_id(0xF0), byte_id(0x9F), byte_id(0x98)],
        [byte_id(0xFF)], hello + [byte_id(0xF0), byte_id(0x9F)] + hello, [byte_id(0xED), byte_id(0xA0), byte_id(0x80)],
        [byte_id(0xC0), byte_id(0xAF)], [byte_id(0xEF), byte_id(0xBB), byte_id(0xBF)] + hello,
    ]
    # (Bytes that never occur in UTF-8, such as 0xC0 or 0xFF, have no token in this vocabulary.)
    invalid = [ids for ids in invalid if None not in ids]
    decode_cases = [{"ids": ids, "decoded": [tok.decode(ids) for tok in tokenizers]} for ids in invalid]

    # Added-token flags the OLMo files do not use (lstrip, rstrip, single_word, a normalized token whose
    # content is not in NFC): the same entries are appended to the first file's added_tokens here and
    # in the test.
    with open(os.path.join(DATA, FILES[0]), encoding="utf-8") as f:
        extended = json.load(f)
    extended["added_tokens"] += EXTRA_ADDED_TOKENS
    flagged = Tokenizer.from_str(json.dumps(extended))
    flag_cases = [{"text": t, "ids": flagged.encode(t).ids} for t in FLAG_TEXTS]

    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(
            {
                "version": 1,
                "generator": "scripts/golden/make_tokenizer_fixtures.py",
                "files": FILES,
                "hash": "FNV-1a 32-bit over each id's 4 little-endian bytes",
                "corpus": corpus,
                "cases": cases,
                "decodeCases": decode_cases,
                "extraAddedTokens": EXTRA_ADDED_TOKENS,
                "flagCases": flag_cases,
            },
            f,
            ensure_ascii=True,
        )
    print(f"wrote {len(lines)} lines, {len(chunks)} chunks, {len(cases)} hard cases to {os.path.relpath(OUT)}")


if __name__ == "__main__":
    main()
