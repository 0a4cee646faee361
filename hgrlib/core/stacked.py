"""K EmotionModels of one shape as one network: hgrlib.core.models' own forward, run for every member at once
through torch.func (`stack_module_state`, `functional_call`, `vmap`), so the stack follows models.py by
construction.

Stacked parameters and buffers are ordinary tensors with a leading K axis. Member k's parameters are also
leaf views into them (`member_parameters(k)`), so each member keeps its own torch.optim.AdamW and OneCycleLR,
exactly as its solo run (its learning rate, weight decay, schedule length and non-finite skips), while the
update lands in the stacked tensors without a copy. BatchNorm statistics are stacked buffers, updated in place
per member. Dropout masks: member k draws its own from its generator, in the order and shapes the solo forward
draws them, and the stacked forward multiplies them in (so a member's masks do not depend on the others).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from hgrlib.config import Config
from hgrlib.core.models import EmotionModel


class ModelStack:
    """K EmotionModels (same config) trained as one: call it with the members' (audio, faces, y) batches."""

    def __init__(self, models: list[EmotionModel], generators: list[torch.Generator] | None = None) -> None:
        self.template = copy.deepcopy(models[0]).to("meta")  # structure only: every tensor comes from the stack
        params, self.buffers = stack_module_state(models)
        self.params = {n: p.detach().requires_grad_() for n, p in params.items()}  # (K, ...) leaves
        self.members = [{n: nn.Parameter(p.detach()[k]) for n, p in self.params.items()} for k in range(len(models))]
        self.generators = generators
        self.training = True
        self._dropouts = [m for m in self.template.modules() if isinstance(m, nn.Dropout)]
        self._reach: dict[str, set[str]] | None = None  # output name -> parameters it depends on
        self._idle: dict = {}

    @property
    def k(self) -> int:
        return len(self.members)

    def train(self, mode: bool = True) -> ModelStack:
        self.training = mode
        return self

    def eval(self) -> ModelStack:
        return self.train(False)

    def member_parameters(self, k: int) -> list[nn.Parameter]:
        """Member k's parameters (views into the stack), in EmotionModel.parameters() order: for its optimiser."""
        return list(self.members[k].values())

    def member_state(self, k: int) -> dict[str, Tensor]:
        """Member k's state_dict, for EmotionModel.load_state_dict (copies, on the CPU)."""
        return {n: t[k].detach().cpu().clone() for n, t in (self.params | self.buffers).items()}

    def load_member_state(self, k: int, state: dict[str, Tensor]) -> None:
        with torch.no_grad():
            for n, t in (self.params | self.buffers).items():
                t[k] = state[n].to(t.device)

    def __call__(self, inputs: list[tuple[Tensor | None, Tensor | None, Tensor | None]], active: list[bool] | None = None) -> list[dict]:
        """EmotionModel.forward of every member on its own (audio, faces, y); the members' output dicts. Training:
        members not `active` (sitting a step out) get their BatchNorm statistics and generator put back."""
        active = active or [True] * self.k
        idle = [i for i, a in enumerate(active) if not a]
        gens = self.generators if self.training and self.generators else None
        self._idle = {"rows": idle, "bufs": {n: b[idle].clone() for n, b in self.buffers.items()} if idle and self.training else {}}
        saved_gens = {i: gens[i].get_state() for i in idle} if gens else {}
        args = [None if x[0] is None else torch.stack(x) for x in zip(*inputs)]
        masks = self._masks(args, gens) if gens else []
        for i, s in saved_gens.items():
            gens[i].set_state(s)
        self.template.train(self.training)
        in_dims = (0, 0, *[None if x is None else 0 for x in args], 0)

        def member(params, buffers, a, v, y, member_masks):
            with _masked_dropout(self._dropouts, member_masks, self.training):
                return functional_call(self.template, (params, buffers), (a, v, y))

        out = vmap(member, in_dims=in_dims, randomness="different")(self.params, self.buffers, *args, masks)
        if self.training and self._reach is None:
            self._reach = {n: _leaves_reached(o, self.params) for n, o in out.items()}
        return [{n: o[i] for n, o in out.items()} for i in range(self.k)]

    def _masks(self, args: list, gens: list[torch.Generator]) -> list[Tensor]:
        """Every member's dropout masks (K, ...) for this forward, drawn as F.dropout draws them on the CPU
        (bernoulli_(1 - p), then / (1 - p)), in the order the forward applies them (shapes from a meta pass)."""
        shapes: list[tuple] = []
        hooks = [m.register_forward_pre_hook(lambda m, x: shapes.append((m.p, x[0].shape))) for m in self._dropouts]
        try:
            with torch.no_grad():
                meta = [None if x is None else torch.empty(x.shape[1:], dtype=x.dtype, device="meta") for x in args]
                self.template.train()(*meta)
        finally:
            for h in hooks:
                h.remove()
        device = next(iter(self.params.values())).device
        out = []
        for p, shape in shapes:
            if p == 0:
                out.append(torch.ones((self.k, *shape), device=device))
                continue
            drawn = [torch.empty(shape, device=device).bernoulli_(1 - p, generator=g) for g in gens]
            out.append(torch.stack(drawn).div_(1 - p))
        return out

    def backward(self, losses: list[Tensor | None], outs: list[dict]) -> None:
        """Backpropagate the members' losses (None: no update) once through the stack, then give each member's
        parameter views their gradients; a parameter its loss does not reach gets none (as in its solo run)."""
        self.zero_grad()
        used: list[set[str]] = [set() for _ in losses]
        roots, grads = [], []
        for i, loss in enumerate(losses):
            if loss is None:
                continue
            names = [n for n, o in outs[i].items() if o.requires_grad]
            gs = torch.autograd.grad(loss, [outs[i][n] for n in names], allow_unused=True, retain_graph=True)
            for n, g in zip(names, gs):
                if g is not None:
                    used[i].add(n), roots.append(outs[i][n]), grads.append(g)
        if roots:
            torch.autograd.backward(roots, grads)
        for i, member in enumerate(self.members):
            reached = set().union(*(self._reach[n] for n in used[i])) if used[i] else set()
            for n, p in member.items():
                g = self.params[n].grad
                p.grad = g[i] if g is not None and n in reached else None
        with torch.no_grad():  # after backward: batch norm's graph holds the running statistics
            for n, b in self._idle.get("bufs", {}).items():
                self.buffers[n][self._idle["rows"]] = b

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None


class _masked_dropout:
    """Inside the vmapped forward: each nn.Dropout multiplies by the member's next mask (training), or is the
    identity (evaluation), instead of drawing from the global generator."""

    def __init__(self, dropouts: list[nn.Dropout], masks: list[Tensor], training: bool) -> None:
        self.dropouts, self.masks, self.training = dropouts, list(masks), training

    def __enter__(self):
        it = iter(self.masks)
        for m in self.dropouts:
            m.forward = (lambda x, it=it: x * next(it)) if self.training else (lambda x: x)
        return self

    def __exit__(self, *exc) -> None:
        for m in self.dropouts:
            del m.forward


def _leaves_reached(t: Tensor, leaves: dict[str, Tensor]) -> set[str]:
    """Names of the `leaves` that `t`'s autograd graph reaches."""
    ids = {id(v): n for n, v in leaves.items()}
    seen, todo, out = set(), [t.grad_fn], set()
    while todo:
        fn = todo.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        var = getattr(fn, "variable", None)
        if var is not None and id(var) in ids:
            out.add(ids[id(var)])
        todo.extend(f for f, _ in fn.next_functions)
    return out


def stack_signature(cfg: Config) -> tuple:
    """Configs with equal signatures can train as one stack: same data, features, model and schedule length;
    they may differ in seed, fold, labeled fraction, unlabeled use, step matching, lr, weight decay, loss."""
    t = cfg.train
    return (cfg.data, cfg.features, cfg.model, t.epochs, t.batch_size, t.rows_per_batch, t.protocol, t.n_folds, t.device, t.threads)


def stackable(cfg: Config) -> bool:
    """Stacking covers fp32 eager training (TrainConfig.amp off, compile off, graph off)."""
    return cfg.train.amp == "off" and not cfg.train.compile and not cfg.train.graph
