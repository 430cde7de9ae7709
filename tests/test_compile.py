"""``torch.compile`` of the backbone: one graph, the eager model's outputs and gradients.

Under compilation every mmparc op takes its reference formula (standard
operators, see :mod:`mmparc.ops.dispatch`), and the layers leave their
inference caches alone, so dynamo captures the whole backbone without a
graph break (``fullgraph=True``).  The ``aot_eager`` backend runs that
captured forward and backward graph without generating code; inductor's
code generation (minutes for a whole backbone on two cores) is what
``benchmark.py --backends compile`` times.
"""
import pytest
import torch

from mmparc.models import ParCNetV2

ARCH = dict(depths=[1, 1, 1, 1], dims=[8, 16, 32, 64])


@pytest.mark.parametrize('kernel_mode', ['fixed', 'global'])
def test_compiled_backbone_is_one_graph_with_eager_results(kernel_mode):
    torch._dynamo.reset()
    model = ParCNetV2(ARCH, kernel_mode=kernel_mode, out_indices=(0, 1, 2, 3),
                      gap_before_final_norm=False)
    compiled = torch.compile(model, backend='aot_eager', fullgraph=True)
    x = torch.randn(2, 3, 64, 96)
    model.eval()
    with torch.no_grad():
        for ours, eager in zip(compiled(x), model(x)):
            assert (ours - eager).abs().max().item() < 1e-5
    model.train()
    outs = compiled(x)
    grads = torch.autograd.grad(sum(o.square().sum() for o in outs), list(model.parameters()))
    eager_grads = torch.autograd.grad(sum(o.square().sum() for o in model(x)),
                                      list(model.parameters()))
    for ours, eager in zip(grads, eager_grads):
        assert (ours - eager).abs().max().item() <= 1e-4 * (1 + eager.abs().max().item())


def test_compiled_oversized_convolution_takes_the_gemm_form():
    """Under ``torch.compile`` the oversized kernels run as Toeplitz products (``matmul``),
    as in eager mode, not as the depthwise convolution the reference formula uses."""
    from mmparc.models.layers import OversizedConv1d
    torch._dynamo.reset()
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    layer = OversizedConv1d(6, 15, 'w', 'global').eval()
    x = torch.randn(2, 6, 9, 11)
    with torch.no_grad():
        out = torch.compile(layer, backend=backend, fullgraph=True)(x)
        expected = layer(x)
    targets = {str(node.target) for gm in graphs for node in gm.graph.nodes}
    assert any('matmul' in t for t in targets), targets
    assert not any('conv2d' in t for t in targets), targets
    assert (out - expected).abs().max().item() < 1e-5
