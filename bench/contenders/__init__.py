"""One module per contender. Each offers what the worker measures:

- ``trainer(hidden, batch, X, y, threads)``: an object with ``run(k)`` (k more whole shuffled
  epochs of SGD with momentum 0.9, lr 0.01, no weight decay, mini-batches of ``batch``),
  ``samples_per_epoch`` and ``version``; building it and the first ``run(1)`` may compile and
  allocate, the worker times only later calls.
- ``predictor(layers, threads)`` (where the contender takes part in inference): a function
  of a float32 (n, 784) array giving the (n, 10) class probabilities of the network whose
  weights are ``layers`` = [(W (n_in, n_out), b), ...] with relu hidden units.
"""
CONTENDERS_TRAIN = ["fastmlp", "torch", "torch_compile", "jax", "sklearn", "numpy"]
CONTENDERS_PREDICT = ["fastmlp", "fastmlp_blas", "onnxruntime", "torch"]
