"""PyTorch on the CPU: eager, a plain loop over pre-made tensors; torch_compile_.py wraps the
same train step in torch.compile."""
import numpy as np


def _model(hidden):
    import torch
    from common import units
    u = units(hidden)
    layers = []
    for i, (n_in, n_out) in enumerate(zip(u[:-1], u[1:])):
        layers.append(torch.nn.Linear(n_in, n_out))
        if i < len(u) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


class Trainer:
    compile = False

    def __init__(self, hidden, batch, X, y, threads):
        import torch
        from common import LEARNING_RATE, MOMENTUM
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        self.version = torch.__version__
        self.torch = torch
        self.model = _model(hidden)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)
        self.X = torch.from_numpy(X)
        self.y = torch.from_numpy(y)
        self.batch = batch
        self.samples_per_epoch = X.shape[0]
        model, opt, F = self.model, self.opt, torch.nn.functional

        def train_step(xb, yb):
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            return loss.detach()

        # dynamic=False: the short last batch gets its own static graph in the warm-up epoch
        # instead of turning every later batch into a dynamic-shape graph
        self.step = torch.compile(train_step, dynamic=False) if self.compile else train_step
        self.loss = None

    def run(self, k):
        n = self.X.shape[0]
        for _ in range(k):
            order = self.torch.randperm(n)
            for start in range(0, n, self.batch):
                rows = order[start:start + self.batch]
                self.loss = self.step(self.X[rows], self.y[rows])

    def extra(self):
        return {"final_loss": float(self.loss)}


def trainer(hidden, batch, X, y, threads):
    return Trainer(hidden, batch, X, y, threads)


def _loaded_model(layers):
    """The eval-mode torch model holding `layers` (torch keeps W transposed: (n_out, n_in))."""
    import torch
    hidden = tuple(W.shape[1] for W, _ in layers[:-1])
    model = _model(hidden).eval()
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for lin, (W, b) in zip(linears, layers):
            lin.weight.copy_(torch.from_numpy(W.T.copy()))
            lin.bias.copy_(torch.from_numpy(b))
    return model


def predictor(layers, threads):
    import torch
    torch.set_num_threads(threads)
    model = _loaded_model(layers)

    def predict_proba(X):
        with torch.inference_mode():
            return torch.softmax(model(torch.from_numpy(X)), dim=1).numpy()
    return predict_proba


def export_onnx(layers, path):
    """The torch model with these weights, softmax included, exported to ONNX with a dynamic
    batch axis (TorchScript exporter: the dynamo one needs onnxscript)."""
    import torch
    full = torch.nn.Sequential(_loaded_model(layers), torch.nn.Softmax(dim=1)).eval()
    example = torch.zeros((1, layers[0][0].shape[0]), dtype=torch.float32)
    torch.onnx.export(full, (example,), path, input_names=["x"], output_names=["proba"],
                      dynamic_axes={"x": {0: "n"}, "proba": {0: "n"}}, dynamo=False)
    return path


def version():
    import torch
    return torch.__version__
