"""MONAI-style sliding-window inference in plain numpy (reference for `lesioneval infer`).

Conventions (the ones `lesioneval infer` follows):
  * spatial axes (D, H, W) = the NIfTI array axes (i, j, k) as nibabel returns them;
  * z-score over the whole image: (x - mean) / std, population std (ddof 0), computed in
    float64 and applied before any padding; a constant image (std 0) only gets the mean
    subtracted;
  * an axis shorter than the patch is zero-padded symmetrically (before = diff // 2,
    after = diff - before) and the output cropped back;
  * windows start at multiples of interval = max(int(patch * (1 - overlap)), 1) (interval =
    patch where the padded image is exactly one patch long), the last one shifted back so
    that it ends at the image end (monai.inferers.utils.dense_patch_slices);
  * importance map: "constant" = ones; "gaussian" = product over axes of
    exp(-x^2 / (2 sigma^2)), x = -(p-1)/2 .. (p-1)/2, sigma = 0.125 * p, clamped below at
    max(min, 1e-3) (MONAI's compute_importance_map, no max-normalisation);
  * out = sum(w * pred) / sum(w) over the windows covering a voxel, on what the model
    outputs (probabilities if the sigmoid/softmax is inside the model, logits otherwise:
    the activation is applied after blending).

Only numpy here: import it after `_venv.ensure()`.
"""
import numpy as np


def zscore(img):
    x = np.asarray(img, dtype=np.float64)
    mean = x.mean()
    std = x.std()
    out = x - mean
    if std > 0:
        out = out / std
    return out.astype(np.float32)


def scan_starts(size, patch, overlap):
    """Window start offsets along one axis of length `size` (>= patch)."""
    if size == patch:
        return [0]
    interval = max(int(patch * (1.0 - overlap)), 1)
    starts = []
    d = 0
    while True:
        s = d * interval
        if s + patch >= size:
            starts.append(size - patch)
            break
        starts.append(s)
        d += 1
    # dense_patch_slices never repeats a start except through the shift; keep order, unique
    out = []
    for s in starts:
        if not out or out[-1] != s:
            out.append(s)
    return out


def importance_map(patch, blend):
    """monai.data.utils.compute_importance_map: ones, or the product of float32 1-D gaussians
    exp(-x^2 / (2 sigma^2)), x = -(p-1)/2 .. (p-1)/2, sigma = 0.125 p, clamped below at
    max(min, 1e-3).  Not max-normalised (as MONAI: for an even p the peak is a bit below 1;
    scaling all weights alike would not change the blend, only the 1e-3 floor moves)."""
    if blend == "constant":
        return np.ones(patch, dtype=np.float32)
    if blend != "gaussian":
        raise ValueError(f"unknown blend {blend!r}")
    w = None
    for p in patch:
        sigma = 0.125 * p
        x = np.arange(p, dtype=np.float32) - np.float32((p - 1) / 2.0)
        g = np.exp(x * x / np.float32(-2.0 * sigma * sigma)).astype(np.float32)
        w = g if w is None else np.multiply.outer(w, g).astype(np.float32)
    return np.maximum(w, np.float32(max(float(w.min()), 1e-3))).astype(np.float32)


def windows(shape, patch, overlap):
    """All window start triples (D, H, W) in C order over `shape` (already >= patch)."""
    per_axis = [scan_starts(s, p, overlap) for s, p in zip(shape, patch)]
    return [(a, b, c) for a in per_axis[0] for b in per_axis[1] for c in per_axis[2]]


def sliding_window(img, patch, overlap, blend, predict, batch=4):
    """Blend `predict` over windows of the 3-D float32 array `img` (already normalised).

    predict(x) takes float32 [N, 1, pD, pH, pW] and returns [N, C, pD, pH, pW] (the
    model's own output channels, before any activation applied after blending).
    Returns float32 [C, D, H, W] (the blended output, cropped to img's shape).
    """
    img = np.asarray(img, dtype=np.float32)
    patch = tuple(int(p) for p in patch)
    pads = []
    for s, p in zip(img.shape, patch):
        diff = max(p - s, 0)
        pads.append((diff // 2, diff - diff // 2))
    x = np.pad(img, pads, mode="constant", constant_values=0.0) if any(sum(p) for p in pads) else img
    wmap = importance_map(patch, blend).astype(np.float64)
    starts = windows(x.shape, patch, overlap)
    acc = None
    cnt = np.zeros(x.shape, dtype=np.float64)
    for i in range(0, len(starts), batch):
        chunk = starts[i:i + batch]
        xb = np.stack([x[a:a + patch[0], b:b + patch[1], c:c + patch[2]] for a, b, c in chunk])[:, None]
        yb = np.asarray(predict(np.ascontiguousarray(xb, dtype=np.float32)), dtype=np.float64)
        if acc is None:
            acc = np.zeros((yb.shape[1],) + x.shape, dtype=np.float64)
        for (a, b, c), y in zip(chunk, yb):
            sl = (slice(a, a + patch[0]), slice(b, b + patch[1]), slice(c, c + patch[2]))
            acc[(slice(None),) + sl] += y * wmap
            cnt[sl] += wmap
    out = acc / cnt
    crop = tuple(slice(lo, lo + s) for (lo, _), s in zip(pads, img.shape))
    return out[(slice(None),) + crop].astype(np.float32)


def label26(mask):
    """26-connected components of a 3-D boolean array by BFS over the foreground voxels.

    Returns (labels int32 array, n); labels numbered 1..n by first voxel in C order.
    """
    mask = np.asarray(mask, dtype=bool)
    lab = np.zeros(mask.shape, dtype=np.int32)
    coords = np.argwhere(mask)
    if len(coords) == 0:
        return lab, 0
    index = {tuple(c): i for i, c in enumerate(coords.tolist())}
    comp = [0] * len(coords)
    offs = [(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1) if (a, b, c) != (0, 0, 0)]
    n = 0
    for i, c in enumerate(coords.tolist()):
        if comp[i]:
            continue
        n += 1
        comp[i] = n
        stack = [tuple(c)]
        while stack:
            z, y, x = stack.pop()
            for a, b, d in offs:
                j = index.get((z + a, y + b, x + d))
                if j is not None and not comp[j]:
                    comp[j] = n
                    stack.append((z + a, y + b, x + d))
    lab[tuple(coords.T)] = comp
    return lab, n


def lesion_counts(pred_mask, gt_mask, iou=0.1):
    """Lesion counts of a binary prediction against a binary GT (26-connected components).

    Returns a dict:
      pred, gt         numbers of predicted / GT lesions;
      touch, fp_any    predicted lesions that share a voxel with some GT lesion / none;
      gt_found         GT lesions that share a voxel with some predicted lesion;
      tp, fp, fn       lesioneval's default rule: pairs with IoU >= `iou` qualify, matched
                       one-to-one maximising the sum of (IoU + 1) (exhaustively within each
                       connected block of qualifying pairs), unmatched predictions are FP.
    """
    plab, npred = label26(pred_mask)
    glab, ngt = label26(gt_mask)
    psize = np.bincount(plab.ravel(), minlength=npred + 1)
    gsize = np.bincount(glab.ravel(), minlength=ngt + 1)
    both = (plab > 0) & (glab > 0)
    pairs = {}
    for p, g in zip(plab[both].tolist(), glab[both].tolist()):
        pairs[(p, g)] = pairs.get((p, g), 0) + 1
    touch = {p for p, _ in pairs}
    found = {g for _, g in pairs}
    edges = {}
    for (p, g), inter in pairs.items():
        score = inter / (psize[p] + gsize[g] - inter)
        if score >= iou:
            edges[(p, g)] = score
    # connected blocks of the qualifying graph, then the best matching in each block
    adj = {}
    for p, g in edges:
        adj.setdefault(("p", p), []).append(("g", g))
        adj.setdefault(("g", g), []).append(("p", p))
    seen = set()
    tp = 0
    for start in sorted(adj):
        if start in seen:
            continue
        block, stack = [], [start]
        seen.add(start)
        while stack:
            n = stack.pop()
            block.append(n)
            for m in adj[n]:
                if m not in seen:
                    seen.add(m)
                    stack.append(m)
        gts = sorted(g for k, g in block if k == "g")

        def best(i, used):
            if i == len(gts):
                return (0.0, 0)
            out = best(i + 1, used)
            for k, p in adj[("g", gts[i])]:
                if p not in used:
                    w, c = best(i + 1, used | {p})
                    cand = (w + edges[(p, gts[i])] + 1.0, c + 1)
                    if cand[0] > out[0]:
                        out = cand
            return out

        tp += best(0, frozenset())[1]
    return dict(pred=npred, gt=ngt, touch=len(touch), fp_any=npred - len(touch),
                gt_found=len(found), tp=tp, fp=npred - tp, fn=ngt - tp)
