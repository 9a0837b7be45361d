use lode_gpu_verify::fraud::verify_fraud_proof;
use lode_gpu_verify::freivalds::find_wrong_element;
use lode_gpu_verify::verify::Prover;
use lode_gpu_verify::{CpuGemm, Error};

use crate::common::{random_matrix, JOB_ID};

fn cheating_provider() -> (Prover, usize, usize, i32) {
    let (a, b) = (random_matrix(11, 19, 21), random_matrix(19, 10, 22));
    let mut c = CpuGemm::new().gemm(&a, &b).expect("gemm");
    let truth = c.data()[9 * 10 + 7];
    c.data_mut()[9 * 10 + 7] = truth - 3;
    (Prover::new(a, &b, c, 4).expect("prover"), 9, 7, truth)
}

#[test]
fn a_consumer_turns_a_freivalds_failure_into_a_fraud_proof_anyone_can_check() {
    let (p, row, col, truth) = cheating_provider();
    let (a, b) = (random_matrix(11, 19, 21), random_matrix(19, 10, 22));
    let found = find_wrong_element(&a, &b, p.output(), &[3; 32], 2).expect("freivalds");
    assert_eq!(found, Some((row, col, truth - 3, truth)));
    let job = p.job(JOB_ID, 2);
    let proof = p.fraud_proof(JOB_ID, row, col).expect("proof");
    let proven = verify_fraud_proof(&job, &proof).expect("fraud is proven");
    assert_eq!(
        (proven.row, proven.col, proven.claimed, proven.correct),
        (row, col, truth - 3, truth)
    );
}

#[test]
fn a_fraud_proof_against_a_correct_element_is_rejected() {
    let (p, row, _, _) = cheating_provider();
    let job = p.job(JOB_ID, 2);
    let proof = p.fraud_proof(JOB_ID, row, 0).expect("proof");
    assert!(matches!(
        verify_fraud_proof(&job, &proof),
        Err(Error::FraudProofInvalid(_))
    ));
}

#[test]
fn a_tampered_fraud_proof_is_rejected() {
    let (p, row, col, _) = cheating_provider();
    let job = p.job(JOB_ID, 2);
    let honest = p.fraud_proof(JOB_ID, row, col).expect("proof");
    let mut t = honest.clone();
    t.tile[0] ^= 1;
    assert!(verify_fraud_proof(&job, &t).is_err());
    let mut t = honest.clone();
    t.a_row.data[0] ^= 1;
    assert!(verify_fraud_proof(&job, &t).is_err());
    let mut t = honest.clone();
    t.b_col = p.open_b_col(col - 1).expect("other column");
    assert!(verify_fraud_proof(&job, &t).is_err());
    let mut t = honest.clone();
    t.job_id = [0; 32];
    assert!(verify_fraud_proof(&job, &t).is_err());
    let mut t = honest;
    t.row = 100;
    assert!(matches!(
        verify_fraud_proof(&job, &t),
        Err(Error::IndexOutOfRange { .. })
    ));
}
