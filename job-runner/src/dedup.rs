//! The memory of `duplicate_row`: a set of 128-bit fingerprints of the lines
//! kept so far, counted in the run's memory pool, and hash buckets on disk
//! for what comes after the set could no longer grow.
//!
//! Lines are offered in stream order (ingest date, then line). While the set
//! can grow, each line is decided at once: the first copy of a fingerprint
//! is kept, later ones are duplicates. When the pool refuses more, the set is
//! frozen: a line whose fingerprint it holds is still a duplicate (its first
//! copy was kept earlier), and any other line is deferred to one of N bucket
//! files on disk, chosen by its fingerprint, in stream order. All copies of a
//! fingerprint share a bucket, so each bucket, read back with a fresh set of
//! its own, decides its lines exactly (first copy kept), as a grace hash join
//! does.

use std::collections::HashSet;
use std::fs::File;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::BufWriter;
use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SpillFile;
use datafusion::execution::disk_manager::DiskManager;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool, MemoryReservation};

/// A fingerprint is already a hash: its low 64 bits are the set's hash.
#[derive(Default)]
pub struct PrintHasher(u64);

impl Hasher for PrintHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u128 keys are hashed; this path folds any other input.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }

    fn write_u128(&mut self, value: u128) {
        self.0 = value as u64;
    }
}

type PrintSet = HashSet<u128, BuildHasherDefault<PrintHasher>>;

/// Bytes a set of `capacity` fingerprints allocates: a power of two of
/// slots at most 7/8 full, each a key and a control byte.
fn table_bytes(capacity: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let slots = (capacity * 8 / 7).next_power_of_two();
    slots * (std::mem::size_of::<u128>() + 1)
}

/// What the set says of a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The first copy: kept.
    First,
    /// A later copy: `duplicate_row`.
    Copy,
    /// Not known yet: the set is full and does not hold it.
    Deferred,
}

/// Fingerprints seen, growing only as far as the memory pool allows.
pub struct Fingerprints {
    set: PrintSet,
    reservation: MemoryReservation,
    frozen: bool,
}

impl Fingerprints {
    /// An empty set whose memory is reserved from `pool` as `name`.
    pub fn new(pool: &Arc<dyn MemoryPool>, name: &str) -> Fingerprints {
        Fingerprints {
            set: PrintSet::default(),
            reservation: MemoryConsumer::new(name).register(pool),
            frozen: false,
        }
    }

    /// Fingerprints held.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Whether the pool refused to let it grow.
    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// Decides one line; a first copy is remembered.
    pub fn offer(&mut self, print: u128) -> Decision {
        if self.set.contains(&print) {
            return Decision::Copy;
        }
        if self.frozen || !self.make_room() {
            return Decision::Deferred;
        }
        self.set.insert(print);
        Decision::First
    }

    /// Like [`Fingerprints::offer`], but a set that cannot grow is an error:
    /// a bucket must be decided whole.
    pub fn offer_exact(&mut self, print: u128) -> Result<Decision> {
        match self.offer(print) {
            Decision::Deferred => Err(DataFusionError::ResourcesExhausted(format!(
                "the duplicate_row check needs more than {} for {} fingerprints of one bucket",
                crate::resources::human_size(self.reservation.size() as u64),
                self.set.len() + 1
            ))),
            decision => Ok(decision),
        }
    }

    /// Grows the table before it is full, reserving the new table while the
    /// old one is still allocated (both exist while it rehashes).
    fn make_room(&mut self) -> bool {
        if self.set.len() < self.set.capacity() {
            return true;
        }
        let old = table_bytes(self.set.capacity());
        let wanted = (self.set.capacity() * 2).max(1024);
        let new = table_bytes(wanted);
        if self.reservation.try_grow(new).is_err() {
            self.frozen = true;
            return false;
        }
        if self.set.try_reserve(wanted - self.set.len()).is_err() {
            self.reservation.shrink(new);
            self.frozen = true;
            return false;
        }
        // The true size replaces the estimate, once the old table is gone.
        let now = table_bytes(self.set.capacity());
        self.reservation
            .resize(self.reservation.size() + now - new - old);
        true
    }
}

/// A bucket file, its writer (until finished) and the lines written.
type BucketFile = (
    Arc<dyn SpillFile>,
    Option<StreamWriter<BufWriter<File>>>,
    u64,
);

/// Lines deferred to bucket files, by fingerprint.
pub struct Buckets {
    schema: SchemaRef,
    files: Vec<BucketFile>,
}

/// One bucket file, written; read it with [`Bucket::batches`].
pub struct Bucket {
    file: Arc<dyn SpillFile>,
    /// Lines in it.
    pub rows: u64,
}

fn io_error(error: std::io::Error) -> DataFusionError {
    DataFusionError::IoError(error)
}

impl Buckets {
    /// `count` empty bucket files for batches of `schema`, in the run's spill
    /// directory.
    pub fn new(disk: &Arc<DiskManager>, schema: SchemaRef, count: usize) -> Result<Buckets> {
        let mut files = Vec::with_capacity(count);
        for _ in 0..count.max(1) {
            let file = disk.create_tmp_file("duplicate_row bucket")?;
            let path = file.path().ok_or_else(|| {
                DataFusionError::Execution("the spill directory has no local files".to_owned())
            })?;
            let writer = BufWriter::new(File::create(path).map_err(io_error)?);
            files.push((file, Some(StreamWriter::try_new(writer, &schema)?), 0));
        }
        Ok(Buckets { schema, files })
    }

    /// The bucket of a fingerprint (its high bits: the sets hash the low ones).
    pub fn of(&self, print: u128) -> usize {
        ((print >> 64) as u64 % self.files.len() as u64) as usize
    }

    /// Appends a batch of one bucket's lines, in stream order.
    pub fn write(&mut self, bucket: usize, batch: &RecordBatch) -> Result<()> {
        let (_, writer, rows) = &mut self.files[bucket];
        if let Some(writer) = writer {
            writer.write(batch)?;
            *rows += batch.num_rows() as u64;
        }
        Ok(())
    }

    /// The schema of the buckets' batches.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Closes every file; returns the buckets and the bytes written.
    pub fn finish(self) -> Result<(Vec<Bucket>, u64)> {
        let mut buckets = Vec::with_capacity(self.files.len());
        let mut bytes = 0;
        for (file, writer, rows) in self.files {
            if let Some(mut writer) = writer {
                writer.finish()?;
                let mut inner = writer.into_inner()?;
                std::io::Write::flush(&mut inner).map_err(io_error)?;
            }
            if let Some(path) = file.path() {
                bytes += std::fs::metadata(path).map_err(io_error)?.len();
            }
            buckets.push(Bucket { file, rows });
        }
        Ok((buckets, bytes))
    }
}

impl Bucket {
    /// The bucket's batches, in the order they were written.
    pub fn batches(&self) -> Result<impl Iterator<Item = Result<RecordBatch>> + use<>> {
        let path = self.file.path().ok_or_else(|| {
            DataFusionError::Execution("the spill directory has no local files".to_owned())
        })?;
        let reader = StreamReader::try_new(
            std::io::BufReader::new(File::open(path).map_err(io_error)?),
            None,
        )?;
        // The file lives as long as the iterator (it is deleted on drop).
        let file = Arc::clone(&self.file);
        Ok(reader.map(move |batch| {
            let _ = &file;
            batch.map_err(DataFusionError::from)
        }))
    }
}

/// The fingerprint of row `row` of two Int64 columns (high, low halves).
pub fn print_at(hi: &Int64Array, lo: &Int64Array, row: usize) -> u128 {
    (u128::from(hi.value(row) as u64) << 64) | u128::from(lo.value(row) as u64)
}

/// The halves of a fingerprint as stored in Int64 columns.
pub fn halves(print: u128) -> (i64, i64) {
    ((print >> 64) as u64 as i64, print as u64 as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::UInt64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::execution::disk_manager::DiskManagerBuilder;
    use datafusion::execution::memory_pool::GreedyMemoryPool;

    /// A stream of fingerprints with many copies, some far apart.
    fn stream(n: u64) -> Vec<u128> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                // About one line in three repeats an earlier one.
                let key = state % (n * 2 / 3);
                u128::from(key).wrapping_mul(0x2545_f491_4f6c_dd1d_u128 << 64 | 1)
            })
            .collect()
    }

    /// Decides every line with a pool of `pool` bytes, spilling what does not fit.
    fn decide(prints: &[u128], pool: usize) -> (Vec<bool>, u64) {
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(pool));
        let disk = DiskManagerBuilder::default().build().map(Arc::new).unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("position", DataType::UInt64, false),
            Field::new("hi", DataType::Int64, false),
            Field::new("lo", DataType::Int64, false),
        ]));
        let mut kept = vec![false; prints.len()];
        let mut set = Fingerprints::new(&pool, "test");
        let mut buckets: Option<Buckets> = None;
        for (chunk_start, chunk) in (0..prints.len())
            .step_by(1000)
            .map(|s| (s, &prints[s..(s + 1000).min(prints.len())]))
        {
            let mut deferred: Vec<Vec<usize>> = Vec::new();
            for (offset, &print) in chunk.iter().enumerate() {
                match set.offer(print) {
                    Decision::First => kept[chunk_start + offset] = true,
                    Decision::Copy => {}
                    Decision::Deferred => {
                        let buckets = buckets.get_or_insert_with(|| {
                            Buckets::new(&disk, Arc::clone(&schema), 128).unwrap()
                        });
                        let b = buckets.of(print);
                        deferred.resize(deferred.len().max(b + 1), Vec::new());
                        deferred[b].push(chunk_start + offset);
                    }
                }
            }
            for (b, positions) in deferred.iter().enumerate() {
                if positions.is_empty() {
                    continue;
                }
                let column = |f: fn(u128) -> i64| {
                    Arc::new(Int64Array::from_iter_values(
                        positions.iter().map(|&p| f(prints[p])),
                    ))
                };
                let batch = RecordBatch::try_new(
                    Arc::clone(&schema),
                    vec![
                        Arc::new(UInt64Array::from_iter_values(
                            positions.iter().map(|&p| p as u64),
                        )),
                        column(|p| halves(p).0),
                        column(|p| halves(p).1),
                    ],
                )
                .unwrap();
                buckets.as_mut().unwrap().write(b, &batch).unwrap();
            }
        }
        drop(set);
        let Some(buckets) = buckets else {
            return (kept, 0);
        };
        let (buckets, bytes) = buckets.finish().unwrap();
        for bucket in buckets {
            let mut set = Fingerprints::new(&pool, "bucket");
            for batch in bucket.batches().unwrap() {
                let batch = batch.unwrap();
                let position = batch
                    .column(0)
                    .as_any()
                    .downcast_ref::<UInt64Array>()
                    .unwrap();
                let hi = batch
                    .column(1)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap();
                let lo = batch
                    .column(2)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap();
                for row in 0..batch.num_rows() {
                    if set.offer_exact(print_at(hi, lo, row)).unwrap() == Decision::First {
                        kept[position.value(row) as usize] = true;
                    }
                }
            }
        }
        (kept, bytes)
    }

    #[test]
    fn first_copies_are_kept_whether_or_not_the_set_fits() {
        let prints = stream(200_000);
        let mut seen = HashSet::new();
        let expected: Vec<bool> = prints.iter().map(|p| seen.insert(*p)).collect();
        assert!(expected.iter().any(|k| !k) && expected.iter().any(|k| *k));

        let (in_memory, spilled) = decide(&prints, 64 << 20);
        assert_eq!(spilled, 0);
        assert_eq!(in_memory, expected);

        // Room for a few thousand fingerprints: most lines go to buckets.
        let (bucketed, spilled) = decide(&prints, 200 << 10);
        assert!(spilled > 0);
        assert_eq!(bucketed, expected);
    }

    #[test]
    fn the_reservation_follows_the_table() {
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(1 << 30));
        let mut set = Fingerprints::new(&pool, "test");
        for print in 0..100_000u128 {
            assert_eq!(set.offer(print << 64 | print), Decision::First);
        }
        assert_eq!(set.offer(5 << 64 | 5), Decision::Copy);
        assert_eq!(pool.reserved(), table_bytes(set.set.capacity()));
        drop(set);
        assert_eq!(pool.reserved(), 0);
    }

    #[test]
    fn a_set_the_pool_refuses_is_frozen_and_exact_offers_fail() {
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(64 << 10));
        let mut set = Fingerprints::new(&pool, "test");
        let decisions: Vec<Decision> = (0..10_000u128).map(|p| set.offer(p << 64 | p)).collect();
        assert!(set.is_frozen());
        assert!(decisions.contains(&Decision::Deferred));
        assert_eq!(set.offer(0), Decision::Copy);
        assert!(pool.reserved() <= 64 << 10);
        let error = set.offer_exact(99_999).unwrap_err();
        assert!(error.to_string().contains("duplicate_row"), "{error}");
    }
}
