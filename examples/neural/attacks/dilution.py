"""Attack e (issue 26): dilution by a second, unwatermarked teacher (a
model of the same size trained on the teacher's half with another seed,
served plain: another provider, or the distiller's own).
  mix  the harvest mixed with the second teacher's answers to the same
       prompts (one each: half the fine-tuning answers are unwatermarked);
  avg  distillation from the average of both teachers' distributions
       (the ensemble attack of arXiv 2605.30501): every harvested token is
       drawn from 0.5 p_provider + 0.5 p_second given the answer so far,
       the provider's p being its watermarked distribution (the distiller
       queries both per token); the student is fine-tuned on those samples."""
import torch


def averaged(teacher2, first=None):
    """A common.sample processor: log(0.5 softmax(first(logits)) + 0.5
    softmax(teacher2's logits)) after the same history.  teacher2 keeps its
    own KV cache; a history as long as the prompt starts a new batch."""
    st = {}

    def proc(logits, hist):
        L = len(hist[0])
        if not st or L <= st["L"]:
            st.update(caches=[[] for _ in teacher2.blocks], L=L, pos=L)
            l2 = teacher2(torch.tensor(hist), 0, st["caches"])[:, -1]
        else:
            l2 = teacher2(torch.tensor([[h[-1]] for h in hist]), st["pos"], st["caches"])[:, -1]
            st["pos"] += 1
            st["L"] = L
        l2 = l2.masked_fill(torch.isinf(logits), float("-inf"))  # the provider's banned tokens
        l1 = first(logits, hist) if first is not None else logits
        return torch.log(0.5 * l1.softmax(-1) + 0.5 * l2.softmax(-1))
    return proc
