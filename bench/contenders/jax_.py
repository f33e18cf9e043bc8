"""JAX: one jitted function per epoch, jax.lax.scan over the mini-batches of a fresh shuffled
permutation. The scan needs equal batches, so the n % batch rows left over are dropped (the
rate counts only the rows trained)."""
import numpy as np


class Trainer:
    def __init__(self, hidden, batch, X, y, threads):
        import jax
        import jax.numpy as jnp
        from common import LEARNING_RATE, MOMENTUM, units
        self.version = jax.__version__
        self.jax = jax
        n = X.shape[0]
        n_batches = n // batch
        self.samples_per_epoch = n_batches * batch
        key = jax.random.PRNGKey(0)
        params = []
        u = units(hidden)
        for n_in, n_out in zip(u[:-1], u[1:]):
            key, sub = jax.random.split(key)
            bound = np.sqrt(6.0 / (n_in + n_out))
            params.append((jax.random.uniform(sub, (n_in, n_out), jnp.float32, -bound, bound),
                           jnp.zeros(n_out, jnp.float32)))
        velocity = jax.tree_util.tree_map(jnp.zeros_like, params)

        def loss_fn(params, xb, yb):
            h = xb
            for W, b in params[:-1]:
                h = jax.nn.relu(h @ W + b)
            W, b = params[-1]
            logp = jax.nn.log_softmax(h @ W + b)
            return -jnp.mean(jnp.take_along_axis(logp, yb[:, None], axis=1))

        def epoch(params, velocity, X, y, key):
            order = jax.random.permutation(key, X.shape[0])[:n_batches * batch]

            def body(carry, rows):
                params, velocity = carry
                loss, grads = jax.value_and_grad(loss_fn)(params, X[rows], y[rows])
                velocity = jax.tree_util.tree_map(lambda v, g: MOMENTUM * v + g, velocity, grads)
                params = jax.tree_util.tree_map(lambda p, v: p - LEARNING_RATE * v, params, velocity)
                return (params, velocity), loss

            (params, velocity), losses = jax.lax.scan(body, (params, velocity),
                                                      order.reshape(n_batches, batch))
            return params, velocity, losses[-1]

        self.epoch = jax.jit(epoch, donate_argnums=(0, 1))
        self.params, self.velocity = params, velocity
        self.X, self.y = jnp.asarray(X), jnp.asarray(y.astype(np.int32))
        self.key = jax.random.PRNGKey(1)
        self.loss = None

    def run(self, k):
        for _ in range(k):
            self.key, sub = self.jax.random.split(self.key)
            self.params, self.velocity, self.loss = self.epoch(self.params, self.velocity,
                                                               self.X, self.y, sub)
        self.loss.block_until_ready()

    def extra(self):
        return {"final_loss": float(self.loss)}


def trainer(hidden, batch, X, y, threads):
    return Trainer(hidden, batch, X, y, threads)


def version():
    import jax
    return jax.__version__
