//! Once warm, the flagship convolutions allocate nothing: scratch comes from per-thread pools and tap tables live
//! on the stack. A counting global allocator proves it for every pass of both flagship layers (issue #5 needs a
//! training step without heap allocation).

use kiln_kernels::alloc_count::{CountingAllocator, allocations};
use kiln_kernels::{Conv2dGeometry, ConvOptions, Kernels, Threads};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn warm_flagship_convolutions_do_not_allocate() {
    let k = Kernels::best();
    let layers = [
        Conv2dGeometry::spec(32, [28, 28, 1], [5, 5], 3).build().unwrap(),
        Conv2dGeometry::spec(32, [24, 24, 3], [5, 5], 6).build().unwrap(),
    ];
    let opts = ConvOptions::default().threads(Threads::Single);
    let step = |g: &Conv2dGeometry, bufs: &mut [Vec<f32>; 6]| {
        let [x, w, b, y, dx, dw] = bufs;
        k.conv2d_forward(g, opts, x, w, Some(b), y).unwrap();
        k.conv2d_backward_data(g, opts, y, w, dx).unwrap();
        k.conv2d_backward_filter(g, opts, x, y, dw).unwrap();
        k.conv2d_bias_gradient(g, y, b).unwrap();
    };
    let mut bufs: Vec<[Vec<f32>; 6]> = layers
        .iter()
        .map(|g| {
            [
                vec![0.5; g.input_len()],
                vec![0.1; g.weight_len()],
                vec![0.0; g.bias_len()],
                vec![0.0; g.output_len()],
                vec![0.0; g.input_len()],
                vec![0.0; g.weight_len()],
            ]
        })
        .collect();
    for _ in 0..2 {
        for (g, b) in layers.iter().zip(bufs.iter_mut()) {
            step(g, b);
        }
    }
    let before = allocations();
    for _ in 0..5 {
        for (g, b) in layers.iter().zip(bufs.iter_mut()) {
            step(g, b);
        }
    }
    let during = allocations() - before;
    assert_eq!(during, 0, "{during} allocations in 5 warm passes over both layers");
}
