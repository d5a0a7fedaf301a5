/* libwm: keyed green-list watermarking of language-model output, and exact
 * detection of it in texts and in models trained on it.
 *
 *   #include <wm.h>    link with pkg-config --libs libwm (embedding and detection on
 *                      token ids: libsodium alone); the tokenizer.h calls live in
 *                      libwm-tokenizer: pkg-config --libs libwm-tokenizer
 *
 * common.h  status codes, wm_error, version
 * key.h     keys, key files, the shared read-only wm_watermark
 * embed.h   biasing logits in a decode loop; a complete sampler
 * detect.h  per-text, windowed and whole-corpus detection; binomial tails
 * tokenizer.h  Hugging Face byte-level BPE tokenizer.json, id-exact
 *
 * Not included: wm/advanced.h (secret sub-keys for GPU kernels; include it
 * explicitly) and wm/llama.h (needs <llama.h>). */
#ifndef WM_H
#define WM_H
#include "wm/common.h"
#include "wm/key.h"
#include "wm/embed.h"
#include "wm/detect.h"
#include "wm/cluster.h"
#include "wm/tokenizer.h"
#endif
