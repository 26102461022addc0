//! The rotation Lambda: Secrets Manager invokes it once per step (`createSecret`, `setSecret`,
//! `testSecret`, `finishSecret`) for the managed secrets.
//!
//! The logic lives in `orkv-vending`; this binary only names its function
//! (`orkv_vending::function_main!`).

orkv_vending::function_main!(rotation);
