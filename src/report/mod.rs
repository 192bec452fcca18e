//! Tables and files: Markdown/CSV/LaTeX tables for the terminal and papers,
//! `cases.csv`, `lesions.csv`, `summary.csv` and `results.json` for machines.
//! Every file is written atomically (temp name, then rename).

mod files;
mod table;

pub use files::{
    ResultsJson, compare_json, lesion_stats_csv, model_label, score_json, with_model_column, write_outputs,
    write_tables, write_text,
};
pub use table::{Format, Table, cases_table, compare_table, detection_table, md_escape, percent, region_cases_table};
