"""Safe loading of a user's MANO pickle (``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl``).

The released MANO files are Python 2 pickles that reference ``chumpy`` (an unmaintained
package) and old ``scipy.sparse`` module paths. ``pickle.load`` on them would need chumpy and
would execute whatever callable the file names. This module reads them with a restricted
``pickle.Unpickler`` that resolves only the names a MANO file holds:

* numpy array / dtype / scalar reconstruction (``numpy.core`` and ``numpy._core`` spellings,
  including protocol-5 ``_frombuffer``);
* ``scipy.sparse`` CSC/CSR matrices under their old and new module paths, rebuilt from
  ``data``/``indices``/``indptr`` by a local stand-in (no scipy code runs during unpickling);
* chumpy arrays (``Ch``, ``Select``, ``Reshape``, ``transpose``, ``add``, ``subtract``,
  ``multiply``) mapped to small local classes that evaluate to numpy arrays;
* ``copy_reg._reconstructor`` restricted to ``object`` and the stand-in classes, and
  ``_codecs.encode`` restricted to str -> bytes (Python 3 protocol-2 ``bytes``).

Any other global (``os.system``, ``builtins.eval``, ...) raises ``ManoFileError`` before it
is called. Array layout and key names follow the MANO release (Romero et al., "Embodied
Hands", SIGGRAPH Asia 2017) as read by smplx 0.1.28.
"""
from __future__ import annotations

import io
import os
import pickle
from typing import Any, Dict, Optional, Tuple

import numpy as np
import scipy.sparse

MANO_URL = "https://mano.is.tue.mpg.de"

#: Expected shapes of the arrays the hand model needs (real MANO release, 778 vertices).
MANO_SHAPES = {
    "v_template": (778, 3),
    "shapedirs": (778, 3, 10),
    "posedirs": (778, 3, 135),
    "J_regressor": (16, 778),
    "weights": (778, 16),
    "kintree_table": (2, 16),
    "f": (1538, 3),
}


class ManoFileError(ValueError):
    """A MANO file exists but cannot be used (refused pickle content, bad keys or shapes)."""


def guidance(model_dir: str) -> str:
    """The 'what to do' sentence appended to every MANO file error."""
    return (f"Download MANO from {MANO_URL} (free registration, non-commercial licence), "
            f"put MANO_RIGHT.pkl (and optionally MANO_LEFT.pkl) in {model_dir}, "
            f"or leave the MANO model directory empty to use the built-in hand.")


# --------------------------------------------------------------------------- stand-ins
class _Lazy:
    """Base of the local stand-ins: keeps the pickled state, evaluates on demand."""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):
            state = {**(state[0] or {}), **state[1]}  # (dict, slots) form
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"{type(self).__name__}: unexpected state {type(state).__name__}")
        self.__dict__.update({str(k): v for k, v in state.items()})

    def _get(self, key: str) -> Any:
        if key not in self.__dict__:
            raise pickle.UnpicklingError(f"{type(self).__name__}: pickled state lacks '{key}'")
        return self.__dict__[key]

    def value(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError


def _evaluate(obj: Any) -> Any:
    """Turn a stand-in (recursively) into a numpy array / scipy matrix; pass others through."""
    if isinstance(obj, _Lazy):
        return obj.value()
    return obj


class _ChumpyCh(_Lazy):
    """``chumpy.ch.Ch``: a wrapped array; its value is the state's ``x``."""

    def value(self) -> np.ndarray:
        return np.asarray(_evaluate(self._get("x")))


class _ChumpySelect(_Lazy):
    """``chumpy.reordering.Select``: ``a.ravel()[idxs].reshape(preferred_shape)``."""

    def value(self) -> np.ndarray:
        a = np.asarray(_evaluate(self._get("a")))
        out = a.ravel()[np.asarray(self._get("idxs"), dtype=np.int64).ravel()]
        shape = self.__dict__.get("preferred_shape")
        return out.reshape(shape) if shape is not None else out


class _ChumpyReshape(_Lazy):
    """``chumpy.reordering.Reshape``: ``a.reshape(newshape)``."""

    def value(self) -> np.ndarray:
        return np.asarray(_evaluate(self._get("a"))).reshape(self._get("newshape"))


class _ChumpyTranspose(_Lazy):
    """``chumpy.reordering.transpose``: ``np.transpose(a, axes)``."""

    def value(self) -> np.ndarray:
        return np.transpose(np.asarray(_evaluate(self._get("a"))), self.__dict__.get("axes"))


class _ChumpyBinary(_Lazy):
    """``chumpy.ch_ops`` element-wise binary operation on ``a`` and ``b``."""

    op = staticmethod(np.add)

    def value(self) -> np.ndarray:
        return self.op(np.asarray(_evaluate(self._get("a"))), np.asarray(_evaluate(self._get("b"))))


class _ChumpyAdd(_ChumpyBinary):
    op = staticmethod(np.add)


class _ChumpySubtract(_ChumpyBinary):
    op = staticmethod(np.subtract)


class _ChumpyMultiply(_ChumpyBinary):
    op = staticmethod(np.multiply)


class _SparseCompressed(_Lazy):
    """A pickled CSC/CSR matrix, rebuilt from ``data``, ``indices``, ``indptr`` and shape."""

    fmt = "csc"

    def value(self) -> scipy.sparse.spmatrix:
        shape = self.__dict__.get("_shape", self.__dict__.get("shape"))
        if shape is None:
            raise pickle.UnpicklingError("sparse matrix: pickled state lacks its shape")
        args = (np.asarray(self._get("data")), np.asarray(self._get("indices")),
                np.asarray(self._get("indptr")))
        cls = scipy.sparse.csc_matrix if self.fmt == "csc" else scipy.sparse.csr_matrix
        return cls(args, shape=tuple(int(s) for s in shape))


class _SparseCSC(_SparseCompressed):
    fmt = "csc"


class _SparseCSR(_SparseCompressed):
    fmt = "csr"


_STANDINS = (_ChumpyCh, _ChumpySelect, _ChumpyReshape, _ChumpyTranspose, _ChumpyAdd,
             _ChumpySubtract, _ChumpyMultiply, _SparseCSC, _SparseCSR)


def _safe_reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """Stand-in for ``copyreg._reconstructor`` accepting only ``object``-based stand-ins."""
    if base is not object or cls not in _STANDINS or state is not None:
        raise pickle.UnpicklingError(f"refused copy_reg._reconstructor({cls!r}, {base!r}, ...)")
    return object.__new__(cls)


def _latin1_encode(text: Any, encoding: str = "utf-8") -> bytes:
    """Stand-in for ``_codecs.encode`` (how Python 3 writes ``bytes`` at pickle protocol 2)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise pickle.UnpicklingError("refused _codecs.encode call")
    return text.encode(encoding)


def _allowed_globals() -> Dict[Tuple[str, str], Any]:
    multiarray = np.core.multiarray
    table: Dict[Tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("copy_reg", "_reconstructor"): _safe_reconstructor,
        ("copyreg", "_reconstructor"): _safe_reconstructor,
        ("_codecs", "encode"): _latin1_encode,
        ("__builtin__", "object"): object,
        ("builtins", "object"): object,
        ("chumpy.ch", "Ch"): _ChumpyCh,
        ("chumpy", "Ch"): _ChumpyCh,
        ("chumpy.reordering", "Select"): _ChumpySelect,
        ("chumpy.reordering", "Reshape"): _ChumpyReshape,
        ("chumpy.reordering", "transpose"): _ChumpyTranspose,
        ("chumpy.ch_ops", "add"): _ChumpyAdd,
        ("chumpy.ch_ops", "subtract"): _ChumpySubtract,
        ("chumpy.ch_ops", "multiply"): _ChumpyMultiply,
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(mod, "_reconstruct")] = multiarray._reconstruct
        table[(mod, "scalar")] = multiarray.scalar
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):  # pickle protocol 5 arrays
        table[(mod, "_frombuffer")] = np.core.numeric._frombuffer
    for fmt, standin in (("csc", _SparseCSC), ("csr", _SparseCSR)):
        for mod in (f"scipy.sparse.{fmt}", f"scipy.sparse._{fmt}", "scipy.sparse"):
            table[(mod, f"{fmt}_matrix")] = standin
            table[(mod, f"{fmt}_array")] = standin
    return table


_ALLOWED = _allowed_globals()


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler resolving only the globals in ``_ALLOWED``; anything else is refused."""

    def __init__(self, file: io.BufferedIOBase, path: str):
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise ManoFileError(
                f"{self._path}: refusing to load '{module}.{name}' from the pickle: a MANO file "
                f"holds only numpy arrays, scipy sparse matrices and chumpy arrays, so this file "
                f"is not a MANO model (or has been tampered with). It was not executed. "
                f"{guidance(os.path.dirname(self._path) or '.')}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise ManoFileError(f"{self._path}: refusing a persistent id in the pickle")


def load_mano_pickle(path: str) -> Dict[str, Any]:
    """Read a MANO pickle safely and return its top-level dict.

    chumpy objects come back as ``np.ndarray``; sparse matrices as ``scipy.sparse``
    CSC/CSR matrices; other values (arrays, strings) as pickled.

    Raises:
        FileNotFoundError: ``path`` does not exist (message says where to get MANO).
        ManoFileError: the pickle names a refused global, is corrupt, or is not a dict.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"MANO file not found: {path}. {guidance(os.path.dirname(path) or '.')}")
    try:
        with open(path, "rb") as fh:
            data = _RestrictedUnpickler(fh, path).load()
    except ManoFileError:
        raise
    except Exception as exc:  # corrupt / truncated / not a pickle
        raise ManoFileError(f"{path}: cannot read the MANO pickle ({type(exc).__name__}: {exc}). "
                            f"{guidance(os.path.dirname(path) or '.')}") from exc
    if not isinstance(data, dict):
        raise ManoFileError(f"{path}: expected a pickled dict, got {type(data).__name__}. "
                            f"{guidance(os.path.dirname(path) or '.')}")
    try:
        return {str(k): _evaluate(v) for k, v in data.items()}
    except Exception as exc:
        raise ManoFileError(f"{path}: cannot evaluate a chumpy/sparse entry ({exc}). "
                            f"{guidance(os.path.dirname(path) or '.')}") from exc


def validate_mano_data(raw: Dict[str, Any], path: str) -> Dict[str, np.ndarray]:
    """Check keys and shapes of a loaded MANO dict; return clean numpy arrays.

    Returns a dict with ``v_template`` (778,3), ``shapedirs`` (778,3,10), ``posedirs``
    (778,3,135), ``J_regressor`` (16,778) dense, ``weights`` (778,16), all float64 [m];
    ``kintree_table`` (2,16) int64 and ``f`` (1538,3) int64; plus ``hands_components``
    (45,45) and ``hands_mean`` (45,) float64 (identity / zeros when absent: unused with
    ``use_pca=False, flat_hand_mean=True``).

    Raises:
        ManoFileError: a key is missing, has the wrong shape, or holds non-finite values.
    """
    hint = guidance(os.path.dirname(path) or ".")
    out: Dict[str, np.ndarray] = {}
    for key, shape in MANO_SHAPES.items():
        if key not in raw:
            raise ManoFileError(f"{path}: key '{key}' is missing; this is not a MANO hand model "
                                f"file (keys: {sorted(raw)}). {hint}")
        val = raw[key]
        if scipy.sparse.issparse(val):
            val = val.toarray()
        try:
            arr = np.asarray(val)
        except Exception as exc:
            raise ManoFileError(f"{path}: '{key}' is not an array ({exc}). {hint}") from exc
        if key == "shapedirs" and arr.ndim == 3 and arr.shape[:2] == (778, 3) and arr.shape[2] >= 10:
            arr = arr[:, :, :10]
        if arr.shape != shape or not np.issubdtype(arr.dtype, np.number):
            raise ManoFileError(f"{path}: '{key}' has shape {arr.shape} dtype {arr.dtype}, expected "
                                f"{shape} numeric; this is not a MANO hand model file. {hint}")
        if key in ("kintree_table", "f"):
            arr = arr.astype(np.int64)
        else:
            arr = arr.astype(np.float64)
            if not np.all(np.isfinite(arr)):
                raise ManoFileError(f"{path}: '{key}' holds non-finite values. {hint}")
        out[key] = arr
    if out["f"].min() < 0 or out["f"].max() >= 778:
        raise ManoFileError(f"{path}: 'f' indexes vertices outside 0..777. {hint}")
    hc = raw.get("hands_components")
    hm = raw.get("hands_mean")
    out["hands_components"] = (np.asarray(hc, np.float64) if hc is not None and np.shape(hc) == (45, 45)
                               else np.eye(45))
    out["hands_mean"] = np.asarray(hm, np.float64) if hm is not None and np.shape(hm) == (45,) else np.zeros(45)
    return out


def load_mano_file(path: str) -> Dict[str, np.ndarray]:
    """``load_mano_pickle`` + ``validate_mano_data``: the arrays of one MANO file.

    Raises:
        FileNotFoundError: missing file. ManoFileError: refused or malformed content.
    """
    return validate_mano_data(load_mano_pickle(path), os.fspath(path))


def find_mano_files(model_dir: str) -> Tuple[str, Optional[str]]:
    """Paths of ``MANO_RIGHT.pkl`` (required) and ``MANO_LEFT.pkl`` (``None`` if absent).

    Raises:
        FileNotFoundError: ``model_dir`` is not a directory, or it has no MANO_RIGHT.pkl.
    """
    model_dir = os.fspath(model_dir)
    if not os.path.isdir(model_dir):
        raise FileNotFoundError(f"MANO model directory not found (or not a directory): {model_dir}. "
                                f"{guidance(model_dir)}")
    right = os.path.join(model_dir, "MANO_RIGHT.pkl")
    if not os.path.isfile(right):
        raise FileNotFoundError(f"MANO_RIGHT.pkl not found in {model_dir}. {guidance(model_dir)}")
    left = os.path.join(model_dir, "MANO_LEFT.pkl")
    return right, (left if os.path.isfile(left) else None)
