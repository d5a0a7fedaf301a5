/* libwm: BPE tokenizers loaded from Hugging Face tokenizer.json.
 * Declared by <wm.h>, defined in its own library, libwm-tokenizer (with
 * jansson, PCRE2 and utf8proc): link with pkg-config --libs libwm-tokenizer.
 *
 * Detection only works on exactly the ids the watermarking model produced,
 * so this reproduces Hugging Face `tokenizers` id for id for the byte-level
 * BPE family (GPT-2, Llama 3, Qwen2/3, DeepSeek-V3, cl100k/o200k-style) and
 * the SentencePiece-style BPE family (Llama 2 / Mistral, Gemma, Gemini).
 * Anything else (WordPiece, Unigram, WordLevel, unknown normalizers,
 * pre-tokenizers or decoders) is refused at load time with a message that
 * names the file and JSON path, never approximated.
 *
 * Supported: normalizers NFC, NFD, NFKC, NFKD, Prepend, Replace (String or
 * Regex), Strip and Sequence of them; pre-tokenizers Split (Regex or String
 * pattern, every behavior, invert), ByteLevel (add_prefix_space,
 * use_regex), Metaspace (prepend_scheme, split), Digits, Sequence; the BPE
 * model with merges as "a b" or ["a", "b"], ignore_merges, and (without
 * ByteLevel) byte_fallback, unk_token, fuse_unk; decoders ByteLevel, or
 * Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence; added tokens
 * matched in the text as the reference does (leftmost, longest first).
 *
 * Regexes: the files carry Oniguruma syntax; they are compiled with PCRE2 in
 * UTF + UCP mode, which reads every construct these files use (\p{..},
 * (?i:..), (?!..), {m,n}) the same way, \s aside: docs/TOKENIZERS.md#what-is-supported
 * says how it is rewritten. */
#ifndef WM_TOKENIZER_H
#define WM_TOKENIZER_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Immutable once loaded: share one between threads freely. */
typedef struct wm_tokenizer wm_tokenizer;

/* Load a tokenizer.json.  Errors name the file and the JSON position or
 * path ("tok.json: model.merges[17]: ...").  err (may be NULL) is filled
 * on every failure: WM_ERR_ARG (NULL out or path), WM_ERR_IO, WM_ERR_FORMAT,
 * WM_ERR_NOMEM, WM_ERR_CRYPTO, WM_ERR_UNSUPPORTED; *out is then NULL. */
/* @return WM_OK or one of the codes above, err filled.  OUT: *out, owned by the caller
 * (wm_tokenizer_free).  Thread-safe.  The process-wide tables it needs (byte map, Unicode patch
 * for PCRE2) are built once under a lock. */
WM_API WM_NODISCARD wm_status wm_tokenizer_load(wm_tokenizer **out, const char *path, wm_error *err);
/* The same from memory; `name` is used in messages.  err as for
 * wm_tokenizer_load (WM_ERR_ARG: NULL out, or NULL json with len > 0). */
/* @return as wm_tokenizer_load's.  OUT: *out, owned by the caller (wm_tokenizer_free).
 * Thread-safe. */
WM_API WM_NODISCARD wm_status wm_tokenizer_parse(wm_tokenizer **out, const char *json, size_t len,
                                    const char *name, wm_error *err);
/* NULL is a no-op.  Not thread-safe: no other thread may use tok (nor an encoder of it). */
WM_API void wm_tokenizer_free(wm_tokenizer *tok);

/* Number of ids: 1 + the largest id in the vocabulary or added tokens. */
/* @return WM_OK; WM_ERR_ARG (NULL tok or out).  OUT: *out.  Thread-safe. */
WM_API WM_NODISCARD wm_status wm_tokenizer_n_vocab(const wm_tokenizer *tok, uint32_t *out);
/* SHA-256 of the tokenizer.json bytes, to bind keys to a tokenizer. */
/* @return WM_OK; WM_ERR_ARG (NULL tok or out).  OUT: out.  Thread-safe. */
WM_API WM_NODISCARD wm_status wm_tokenizer_sha256(const wm_tokenizer *tok, unsigned char out[32]);

/* Encoding state for one thread: word cache, regex scratch, output buffer.
 * Borrows tok, which must outlive it. */
typedef struct wm_encoder wm_encoder;
/* @return WM_OK; WM_ERR_ARG (NULL out or tok); WM_ERR_NOMEM; *out NULL on failure.  OUT: *out,
 * owned by the caller (wm_encoder_free).  Thread-safe.  Each encoder serves one thread at a time. */
WM_API WM_NODISCARD wm_status wm_encoder_new(wm_encoder **out, const wm_tokenizer *tok);
/* NULL is a no-op.  Not thread-safe: no other thread may use enc. */
WM_API void wm_encoder_free(wm_encoder *enc);

/* Flags for wm_encode and wm_encode_stream, the encoding family (common.h,
 * "Flags": bits 0x00ff0000); any other bit, another family's included, is
 * WM_ERR_ARG. */
#define WM_ENC_SPECIAL_AS_TEXT 0x010000u /* special added tokens are ordinary text */
#define WM_ENC_LOSSY 0x020000u           /* invalid UTF-8 becomes U+FFFD instead of an error */

/* Tokenize len bytes of UTF-8.  *ids points into the encoder and stays
 * valid until its next call.  Invalid UTF-8 is WM_ERR_FORMAT with the byte
 * offset in err, unless WM_ENC_LOSSY.  No special tokens are added (no BOS).
 * The pre-tokenizer's regexes run with no match limit, as the reference's
 * (Oniguruma) do; should the regex engine still fail (its heap limit), the
 * call fails with WM_ERR_LIMIT or WM_ERR_NOMEM and the byte offset in err:
 * text is never silently dropped.  err (may be NULL) is filled on every
 * failure: WM_ERR_ARG (NULL enc, ids or n_ids, NULL text with len > 0, an
 * unknown flag), WM_ERR_FORMAT, WM_ERR_LIMIT, WM_ERR_NOMEM.  Not
 * thread-safe: one thread at a time per encoder. */
/* @return WM_OK or one of the codes above, err filled.  OUT: *ids, *n_ids (*ids points into the
 * encoder). */
WM_API WM_NODISCARD wm_status wm_encode(wm_encoder *enc, const char *text, size_t len, unsigned flags,
                           const wm_token **ids, size_t *n_ids, wm_error *err);

/* The same ids for a text that arrives in parts (a large file read in
 * chunks), in bounded memory: call with each part in order, final = true
 * with the last (which may be empty).  *ids gets the ids that no later part
 * can change (possibly none), pointing into the encoder until its next
 * call; the concatenation over all calls equals wm_encode of the whole
 * text, bit for bit.  flags must be the same for every part (else
 * WM_ERR_ARG).  Held: the text after the last safe cut, normally a few
 * words, but a whole run the pre-tokenizer cannot cut (11 M letters in a
 * row) or, for a pre-tokenizer that merges pieces (Split behaviors other
 * than Isolated and Removed), looks back more than one character, or adds
 * prefix spaces after a Split, a whole segment between added tokens; so
 * also, always, for a tokenizer with a Prepend, Replace or Strip normalizer
 * or a Metaspace pre-tokenizer (Llama 2, Gemma, Gemini: there a segment is
 * one BPE word anyway).
 * Errors name byte offsets in the whole text and end the stream; so does a
 * call to wm_encode.  err (may be NULL) is filled on every failure, as for
 * wm_encode (WM_ERR_ARG also for flags that differ from the stream's).  Not
 * thread-safe: one thread at a time per encoder. */
/* @return WM_OK or one of the codes above, err filled.  OUT: *ids, *n_ids (*ids points into the
 * encoder). */
WM_API WM_NODISCARD wm_status wm_encode_stream(wm_encoder *enc, const char *part, size_t len, unsigned flags, bool final,
                                  const wm_token **ids, size_t *n_ids, wm_error *err);

/* The bytes of ids[0..n-1] (not NUL-terminated, not necessarily valid UTF-8
 * when cut mid-character), pointing into the encoder until its next call.
 * Without a ByteLevel step (SentencePiece-style), the text of the
 * reference's decode(ids, skip_special_tokens = false) through the file's
 * decoder: there byte tokens that do not form UTF-8 by themselves give
 * U+FFFD, so decode a whole sequence, not id by id.  An id outside the
 * vocabulary is WM_ERR_TOKEN. */
/* @return WM_OK; WM_ERR_ARG (NULL enc, text or len, NULL ids with n > 0); WM_ERR_TOKEN;
 * WM_ERR_NOMEM; WM_ERR_LIMIT (a decoder's regex gave up).  OUT: *text, *len (*text points into
 * the encoder).  Not thread-safe: one thread at a time per encoder. */
WM_API WM_NODISCARD wm_status wm_decode(wm_encoder *enc, const wm_token *ids, size_t n, const char **text,
                           size_t *len);

/* The version of libwm-tokenizer itself, as compiled into it (the
 * WM_VERSION_STRING of the tree it was built from).  The two libraries are
 * built and installed together; a program (or the Python binding, which
 * refuses to import) can compare it with wm_version() to catch a
 * libwm-tokenizer from another build found first on the library path.
 * @return a static string, e.g. "0.1.0".  Thread-safe. */
WM_API const char *wm_tokenizer_library_version(void);

/* How many components wm_tokenizer_version reports.
 * @return the count (4).  Thread-safe. */
WM_API size_t wm_tokenizer_n_versions(void);
/* The libraries whose Unicode tables decide how rare characters tokenize:
 * PCRE2's for the pre-tokenizers' \p{..} classes, utf8proc's for the
 * normalization forms and for the characters PCRE2's older tables leave
 * unassigned (docs/TOKENIZERS.md).  Two hosts whose versions differ
 * may give a text assigned in the newer Unicode only different ids, so
 * `wm detect --json` and `wm info` print them.  Component i, for i from 0
 * to wm_tokenizer_n_versions() - 1, as the libraries loaded at run time
 * report it: "pcre2" (pcre2_config(PCRE2_CONFIG_VERSION): version and
 * date), "pcre2_unicode" (PCRE2_CONFIG_UNICODE_VERSION), "utf8proc"
 * (utf8proc_version()), "utf8proc_unicode" (utf8proc_unicode_version()).
 * These and everything in this header are in libwm-tokenizer
 * (pkg-config --libs libwm-tokenizer), not in libwm.
 * @return WM_OK; WM_ERR_ARG (i out of range, NULL name or version); WM_ERR_UNSUPPORTED (PCRE2 reports
 * no version in 64 bytes).  OUT: *name, *version: static strings, valid for the process.  Thread-safe. */
WM_API WM_NODISCARD wm_status wm_tokenizer_version(size_t i, const char **name, const char **version);

#ifdef __cplusplus
}
#endif
#endif
