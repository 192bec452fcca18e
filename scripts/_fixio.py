"""Deterministic NIfTI (gzip mtime 0) and JSON writing shared by the fixture scripts."""
import gzip
import io
import json
import math
import re
from pathlib import Path

import nibabel as nib
import numpy as np


def save_nifti(path, arr, affine, like=None):
    """Write `arr` (axis 0 = NIfTI i) as .nii.gz with the given affine.

    If `like` (a Nifti1Header) is given, its zooms / qform / sform codes are kept
    (with the data type replaced by arr's dtype, no scaling).
    """
    path = Path(path)
    arr = np.asarray(arr)
    hdr = like.copy() if like is not None else None
    img = nib.Nifti1Image(arr, affine, header=hdr)
    img.set_data_dtype(arr.dtype)
    if like is not None:
        img.header.set_zooms(like.get_zooms()[: arr.ndim])
        img.set_qform(affine, code=int(like["qform_code"]) or 1)
        img.set_sform(affine, code=int(like["sform_code"]) or 1)
    else:
        img.set_qform(affine, code=1)
        img.set_sform(affine, code=1)
    img.header["scl_slope"] = 1.0
    img.header["scl_inter"] = 0.0
    raw = img.to_bytes()
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(raw)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())


def dump_json(obj):
    """json.dumps with indent, but lists of scalars kept on one line (compact, stable)."""
    import json
    import re

    text = json.dumps(obj, indent=1)

    def collapse(m):
        return "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]"

    return re.sub(r"\[\s*([-0-9.eE+,\s]+?)\s*\]", collapse, text) + "\n"


def num(x):
    """Python float/int for JSON; non-finite floats become the strings 'inf', '-inf', 'nan'."""
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


# JSON strings allowed inside a one-line scalar list: the non-finite markers of num().
NONFINITE = r'"-?inf"|"nan"'
# Any short string without brackets (for lists of ids).
ANY_STRING = r'"[^"\[\]]*"'


def dump_stable(obj, sort_keys=False, strings=NONFINITE):
    """Stable JSON (indent 1, no NaN) with lists of scalars — numbers, booleans, null and
    strings matching `strings` — kept on one line."""
    text = json.dumps(obj, indent=1, sort_keys=sort_keys, allow_nan=False)

    def collapse(m):
        return "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]"

    scalar = r"(?:[-0-9.eE+]+|" + strings + r"|true|false|null)"
    return re.sub(r"\[\s*(" + scalar + r"(?:\s*,\s*" + scalar + r")*)\s*\]", collapse, text) + "\n"
