#!/usr/bin/env python3
"""Write tests/tokenizer/corpus.json: the parity corpus, a JSON array of
strings chosen to be hard for tokenizers.  Deterministic.
Run: python3 tests/tokenizer/gen_corpus.py > tests/tokenizer/corpus.json"""
import json
import unicodedata

texts = [
    # English prose, contractions in every case
    "The quick brown fox jumps over the lazy dog. It's a test; we're sure they'll pass, aren't we?",
    "I'M SURE IT'S FINE. YOU'RE RIGHT, THEY'VE GONE. WE'LL SEE. HE'D KNOW. She'S here, isN'T she?",
    "In the beginning God created the heaven and the earth.\nAnd the earth was without form, and void.",
    "Mr. O'Neill's 3rd-quarter results: revenue up 12.5% (vs. 9.8%) -- \"remarkable,\" he said...",
    # source code
    "def f(x):\n    return {'a': [1, 2, 3], \"b\": x ** 2}  # comment\n\nclass A(B):\n\tpass\n",
    "#include <stdio.h>\nint main(void) {\n    printf(\"%d\\n\", 42);\n    return 0;\n}\n",
    "for (let i = 0; i < n; ++i) { arr[i] = i << 2 | 1; } // JS\nconst s = `x=${x}`;",
    "<div class=\"a\"><span>&nbsp;&amp;</span></div>\n<!-- html -->\n{{ template }}",
    "SELECT id, name FROM users WHERE age >= 18 AND name LIKE '%smith%';",
    # CJK
    "我们今天去公园散步，天气非常好。机器学习是人工智能的一个分支。",
    "東京は日本の首都です。ひらがなとカタカナ、そして漢字を使います。ｶﾀｶﾅ半角もある。",
    "한국어 텍스트입니다. 안녕하세요, 세계! 대한민국의 수도는 서울입니다.",
    # Cyrillic, Arabic, Hebrew, Devanagari, Greek, Thai
    "Съешь же ещё этих мягких французских булок, да выпей чаю. ПРИВЕТ, мир!",
    "مرحبا بالعالم. هذه جملة باللغة العربية مع أرقام ١٢٣٤٥ و 12345.",
    "שלום עולם! זהו משפט בעברית עם ניקוד: בְּרֵאשִׁית בָּרָא.",
    "नमस्ते दुनिया। यह हिंदी में एक वाक्य है। क्षत्रिय ज्ञान।",
    "Γειά σου Κόσμε. Ελληνικά κείμενα με τόνους: άέήίόύώ.",
    "สวัสดีชาวโลก ภาษาไทยไม่มีช่องว่างระหว่างคำ",
    # emoji: ZWJ families, skin tones, flags, keycaps, variation selectors
    "👨‍👩‍👧‍👦 family, 👍🏽 thumbs, 🇫🇷🇯🇵🇺🇸 flags, 1️⃣ keycap, ❤️ heart, 🏳️‍🌈 flag, 🧑🏿‍🚀",
    "😀😃😄😁😆😅🤣😂🙂🙃😉😊😇🥰😍🤩😘",
    # combining marks, NFD input, other normal forms
    unicodedata.normalize("NFD", "Café résumé naïve coöperate Ångström Ḁḁ ǅ"),
    "e\u0301 a\u0308 o\u0303\u0301 Z\u0335\u0321\u0334a\u0337l\u0336g\u0338o\u0335",
    "ﬁ ﬂ ﬀ ½ ² ℌ ① Ⅻ ㎏ ｆｕｌｌｗｉｄｔｈ ＡＢＣ１２３",
    "\u00c5 vs A\u030a vs \u212b; \u1e9b\u0323; \uac00 vs \u1100\u1161",
    # whitespace: runs of spaces, tabs, CRLF, form feeds, odd spaces
    "a" + " " * 40 + "b" + "  \t\t  c\r\nd\r\n\r\ne\x0cf\x0b g",
    "   leading spaces and trailing spaces   ",
    "\n\n\nthree newlines then text\n\n",
    "no\u00a0break\u2003em\u2009thin\u3000ideographic\u200bzero\u2028line\u2029para\u0085nel",
    "mongolian\u180e vowel \u180e\u180e separator, not white space since Unicode 6.3 \u180e",
    "\t\ttabs\tin\tmiddle\t\t",
    # digits
    "1234567890" * 8,
    "3.14159265358979323846264338327950288419716939937510 and 2,718,281,828 and 0x1F 1e-10",
    "٠١٢٣٤٥٦٧٨٩ ০১২৩ ๐๑๒๓ 一二三 ⅠⅡⅢ ¹²³",
    # special-token strings inside text
    "<|endoftext|>",
    "before<|endoftext|>after <|im_start|>user\nhi<|im_end|> <|begin_of_text|><|eot_id|>",
    "<|end▁of▁sentence|> <｜begin▁of▁sentence｜> <|fim_prefix|>x<|fim_suffix|>",
    "<|endoftext|<|endoftext|>|endoftext|>",
    # punctuation soup, URLs, markdown
    "!!!???...,,,;;;:::---___***###@@@$$$%%%^^^&&&((()))[[[]]]{{{}}}|||\\\\\\///~~~```'''\"\"\"",
    "https://example.com/path?q=1&r=a%20b#frag user@example.org C:\\Windows\\System32",
    "# Title\n\n* item **bold** _it_ `code`\n> quote\n\n| a | b |\n|---|---|\n| 1 | 2 |",
    # mixed scripts in one word, apostrophes of other kinds
    "naïveté Straße ǅemal Ǆ İstanbul ıi ﬃ l’homme don’t rock’n’roll",
    "mixedСкриптWords日本語English한국어",
    # control characters and rarely seen code points
    "\x01\x02\x7f text \U0001F600\U0010FFFD \ufeffBOM \ufffd replacement",
    "𝕳𝖊𝖑𝖑𝖔 𝐁𝐨𝐥𝐝 𝔉𝔯𝔞𝔨𝔱𝔲𝔯 ℝℕℤ",
    # characters assigned in Unicode 15.0 (PCRE2 10.42 knows 14.0): symbols,
    # Kawi and Nag Mundari digits and letters, CJK Extension H, Kawi marks
    " \U0001FAAE hair pick \U0001FAE8 shaking face \U0001FA87 maracas \U0001FAAD\U0001FAAE\U0001FAAF!",
    "Kawi digits \U00011F50\U00011F51\U00011F52 and Nag Mundari \U0001E4F0\U0001E4F1 x\U0001E4D0\U0001E4D1y",
    "CJK H \U00031350\U00031351\U000323AF, Kawi \U00011F04\U00011F05\U00011F00 \U0001F6DC wireless",
    "\U0001FAE8\U0001FAE8\U0001FAE8 '\U0001FAAE's \U0001FA87.\U0001FA88 12\U00011F503",
    # long word and long line
    "pneumonoultramicroscopicsilicovolcanoconiosis " * 5,
    "x" * 500,
    " " * 300,
    "\n" * 50 + "end",
    "ab" * 300,
    "",
    " ",
    "a",
]
import sys
sys.stdout.reconfigure(encoding="utf-8")
sys.stdout.write(json.dumps(texts, ensure_ascii=False, indent=0) + "\n")
