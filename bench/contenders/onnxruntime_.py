"""onnxruntime on the ONNX file exported from the torch model with the same weights."""


def predictor(layers, threads, onnx_path):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])

    def predict_proba(X):
        return session.run(None, {"x": X})[0]
    return predict_proba


def version():
    import onnxruntime
    return onnxruntime.__version__
