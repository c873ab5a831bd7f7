"""ONNX tensors to numpy arrays, each checked against its declared shape before its data is converted."""
import numpy as np

from .. import _untrusted

# TensorProto data types fastconv reads: code -> (name, dtype, the typed field that may hold the values)
DTYPES = {1: ("FLOAT", "<f4", "float_data"), 11: ("DOUBLE", "<f8", "double_data"),
          7: ("INT64", "<i8", "int64_data"), 6: ("INT32", "<i4", "int32_data")}
MAX_INITIALIZER_BYTES = 1 << 31  # a protobuf file cannot hold more than 2 GiB anyway


def to_array(t, path, what):
    """The values of TensorProto ``t`` as a numpy array; ValueError naming ``what`` for external data, an
    unknown type, or values that do not fill the declared shape exactly."""
    if t.data_type not in DTYPES:
        raise ValueError(f"ONNX file {path}: {what} has data type {t.data_type}; fastconv reads "
                         f"{', '.join(v[0] for v in DTYPES.values())}")
    if t.data_location == 1 or len(t.external_data):
        raise ValueError(f"ONNX file {path}: {what} keeps its data in an external file, which fastconv does not "
                         "read (save the model with its data inside)")
    if t.HasField("segment"):
        raise ValueError(f"ONNX file {path}: {what} is a segment of a tensor, which fastconv does not read")
    name, dtype, field = DTYPES[t.data_type]
    shape = _untrusted.check_shape(path, "ONNX file", what, list(t.dims))
    n = _untrusted.n_elements(shape)
    itemsize = np.dtype(dtype).itemsize
    if n * itemsize > MAX_INITIALIZER_BYTES:
        raise ValueError(f"ONNX file {path}: {what} declares shape {shape} ({n * itemsize} bytes), over the "
                         f"limit of {MAX_INITIALIZER_BYTES}")
    raw = t.raw_data
    if raw:
        if len(raw) != n * itemsize:
            raise ValueError(f"ONNX file {path}: {what} declares {name} {shape} ({n * itemsize} bytes) but holds "
                             f"{len(raw)} bytes")
        return np.frombuffer(raw, dtype).reshape(shape).astype(np.dtype(dtype).newbyteorder("="))
    values = getattr(t, field)
    if len(values) != n:
        raise ValueError(f"ONNX file {path}: {what} declares {name} {shape} ({n} values) but holds {len(values)}")
    return np.array(values, np.dtype(dtype).newbyteorder("=")).reshape(shape)
