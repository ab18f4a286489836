//! General matrix multiply: C ← activation(alpha·op(A)·op(B) + beta·C + bias).
//!
//! BLIS-style: packed panels, cache blocking derived from the CPU's caches, a
//! register-blocked microkernel per ISA, and the epilogue applied as each output tile
//! is stored. See `driver.rs` for the loop nest.

mod blocking;
mod desc;
mod driver;
mod epilogue;
mod microkernel;
mod operand;
mod pack;
mod pack_avx2;
mod store;

pub use desc::{GemmDesc, MatrixLayout, Transpose};
pub use epilogue::{Bias, Epilogue};

use crate::arch::Isa;
use crate::error::Result;
use crate::parallel::Parallelism;
use driver::Problem;
pub(crate) use operand::{ImageWindows, OperandA};
use pack::StridedMatrix;
use store::COut;

/// C ← activation(alpha·op(A)·op(B) + beta·C + bias) on the process's ISA path
/// ([`Isa::selected`]).
///
/// Checks every length and stride against the slices and returns
/// [`KernelError`](crate::KernelError) on a mismatch. Results are bitwise identical for
/// every [`Parallelism`].
///
/// ```
/// use axonal_kernels::gemm::{sgemm, Epilogue, GemmDesc};
/// use axonal_kernels::parallel::Parallelism;
/// let a = [1.0, 2.0, 3.0, 4.0]; // 2 × 2, row-major
/// let b = [1.0, 0.0, 0.0, 1.0];
/// let mut c = [0.0; 4];
/// sgemm(&GemmDesc::row_major(2, 2, 2), &a, &b, &mut c, &Epilogue::default(), Parallelism::Sequential)?;
/// assert_eq!(c, a);
/// # Ok::<(), axonal_kernels::KernelError>(())
/// ```
pub fn sgemm(
    desc: &GemmDesc,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    epilogue: &Epilogue<'_>,
    par: Parallelism,
) -> Result<()> {
    sgemm_on(Isa::selected()?, desc, a, b, c, epilogue, par)
}

/// [`sgemm`] on an explicit ISA path (an error if this CPU cannot run it).
pub fn sgemm_on(
    isa: Isa,
    desc: &GemmDesc,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    epilogue: &Epilogue<'_>,
    par: Parallelism,
) -> Result<()> {
    isa.check_available()?;
    desc.validate(a.len(), b.len(), c.len())?;
    epilogue.validate(desc.m, desc.n)?;
    par.validate()?;
    let (rsa, csa) = desc.op_a_strides();
    let (rsb, csb) = desc.op_b_strides();
    let problem = Problem {
        m: desc.m,
        n: desc.n,
        k: desc.k,
        a: OperandA::Matrix(StridedMatrix {
            data: a,
            row_stride: rsa,
            col_stride: csa,
        }),
        b: StridedMatrix {
            data: b,
            row_stride: rsb,
            col_stride: csb,
        },
        c: COut::new(c, desc.c.row_stride, desc.c.col_stride),
        epilogue: *epilogue,
    };
    driver::run(isa, problem, par);
    Ok(())
}

/// C (`m × n`, row stride `desc.c`) = act(windowsᵀ… : the product of a convolution's
/// input windows (`m` output pixels × `k` = taps·channels, read straight from the
/// images: implicit im2col) and op(B) as `desc` describes it, with `epilogue`. `desc`'s A
/// layout is ignored; B and C are checked as [`sgemm_on`] checks them.
pub(crate) fn sgemm_windows_on(
    isa: Isa,
    desc: &GemmDesc,
    windows: ImageWindows<'_>,
    b: &[f32],
    c: &mut [f32],
    epilogue: &Epilogue<'_>,
    par: Parallelism,
) -> Result<()> {
    isa.check_available()?;
    let dense_a = GemmDesc {
        a: MatrixLayout::row_major(desc.k),
        trans_a: Transpose::No,
        ..*desc
    };
    dense_a.validate(desc.m * desc.k, b.len(), c.len())?;
    epilogue.validate(desc.m, desc.n)?;
    par.validate()?;
    let (rsb, csb) = desc.op_b_strides();
    let problem = Problem {
        m: desc.m,
        n: desc.n,
        k: desc.k,
        a: OperandA::Windows(windows),
        b: StridedMatrix {
            data: b,
            row_stride: rsb,
            col_stride: csb,
        },
        c: COut::new(c, desc.c.row_stride, desc.c.col_stride),
        epilogue: *epilogue,
    };
    driver::run(isa, problem, par);
    Ok(())
}
