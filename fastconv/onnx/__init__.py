"""ONNX interop: ``export(model, path, input_shape, opset=17)`` writes a standard ONNX model that onnxruntime
runs with the same outputs; ``load(path)`` builds a fastconv module from any ONNX graph (a DAG) of the
operators in :data:`OPERATORS`. Both need the ``onnx`` package (``pip install 'fastconv[onnx]'``)."""
from .export import export
from .graph import Graph
from .load import load
from .ops import CONVERTERS

OPERATORS = tuple(sorted([*CONVERTERS, "Constant", "Identity"]))

__all__ = ["OPERATORS", "Graph", "export", "load"]
