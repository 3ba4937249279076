//! MNIST and Fashion-MNIST: finding the four IDX files, validating them, and access to images and labels.

use std::path::{Path, PathBuf};

use kiln_tensor::{ClassIndices, ImagesU8, OneHot, Tensor};

use crate::download::{self, MNIST_FILES};
use crate::error::{MnistError, Result};
use crate::idx::IdxArray;

/// Image side in pixels.
pub const IMAGE_SIDE: usize = 28;
/// Pixels per image.
pub const IMAGE_PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;
/// Number of classes.
pub const CLASSES: usize = 10;

/// Environment variable naming a directory that holds MNIST.
pub const ENV_MNIST_DIR: &str = "MNIST_DIR";
/// Environment variable naming a directory that holds Fashion-MNIST.
pub const ENV_FASHION_MNIST_DIR: &str = "FASHION_MNIST_DIR";
/// Where Debian's and Ubuntu's `dataset-fashion-mnist` package installs Fashion-MNIST.
pub const FASHION_MNIST_SYSTEM_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// The standard base names of the four files (each may also be `.gz`, or use `.idx` instead of `-idx`).
pub const FILE_NAMES: [&str; 4] =
    ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

/// A dataset in the MNIST file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dataset {
    /// MNIST handwritten digits (LeCun, Cortes, Burges; CC BY-SA 3.0).
    Mnist,
    /// Fashion-MNIST (Xiao, Rasul, Vollgraf, Zalando Research; MIT licence).
    FashionMnist,
}

impl Dataset {
    /// The display name.
    pub fn name(self) -> &'static str {
        match self {
            Dataset::Mnist => "MNIST",
            Dataset::FashionMnist => "Fashion-MNIST",
        }
    }

    /// The class names, by label.
    pub fn class_names(self) -> [&'static str; CLASSES] {
        match self {
            Dataset::Mnist => ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
            Dataset::FashionMnist => [
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ],
        }
    }

    /// The environment variable that names this dataset's directory.
    pub fn env_var(self) -> &'static str {
        match self {
            Dataset::Mnist => ENV_MNIST_DIR,
            Dataset::FashionMnist => ENV_FASHION_MNIST_DIR,
        }
    }

    /// The per-user cache directory: `$XDG_CACHE_HOME/kiln/<name>`, else `~/.cache/kiln/<name>`.
    pub fn cache_dir(self) -> Option<PathBuf> {
        let sub = match self {
            Dataset::Mnist => "mnist",
            Dataset::FashionMnist => "fashion-mnist",
        };
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".cache")))?;
        Some(base.join("kiln").join(sub))
    }

    /// Loads the dataset from `dir`, which must hold the four files.
    pub fn load(self, dir: impl AsRef<Path>) -> Result<Mnist> {
        let dir = dir.as_ref();
        let files = find_files(dir).map_err(|missing| MnistError::NotFound {
            dataset: self.name(),
            searched: vec![(dir.to_path_buf(), missing)],
            hint: self.hint(self.cache_dir().as_deref()),
        })?;
        let [train_x, train_y, test_x, test_y] = files;
        Ok(Mnist {
            dataset: self,
            dir: dir.to_path_buf(),
            train: Split::load(&train_x, &train_y)?,
            test: Split::load(&test_x, &test_y)?,
        })
    }

    /// Finds and loads the dataset, in this order: `explicit` (if given, it must hold the data); the directory in
    /// the dataset's environment variable (`MNIST_DIR` / `FASHION_MNIST_DIR`; if set, it must hold the data); the
    /// user cache; for Fashion-MNIST the system directory of the `dataset-fashion-mnist` package; finally, for
    /// MNIST, [`download`](crate::download::download) into the user cache (mirror from `KILN_MNIST_MIRROR`, else
    /// [`download::DEFAULT_MIRROR`]).
    pub fn locate(self, explicit: Option<&Path>) -> Result<Mnist> {
        let env_dir = std::env::var_os(self.env_var()).filter(|v| !v.is_empty()).map(PathBuf::from);
        self.locate_from(explicit, env_dir, self.cache_dir(), &download::mirror_from_env())
    }

    /// [`Dataset::locate`] with its sources given explicitly (the environment is not read).
    fn locate_from(
        self,
        explicit: Option<&Path>,
        env_dir: Option<PathBuf>,
        cache: Option<PathBuf>,
        mirror: &str,
    ) -> Result<Mnist> {
        if let Some(dir) = explicit {
            return self.load(dir);
        }
        if let Some(dir) = env_dir {
            return self.load(dir);
        }
        let mut searched = Vec::new();
        let mut candidates: Vec<PathBuf> = cache.iter().cloned().collect();
        if self == Dataset::FashionMnist {
            candidates.push(PathBuf::from(FASHION_MNIST_SYSTEM_DIR));
        }
        for dir in candidates {
            match find_files(&dir) {
                Ok(_) => return self.load(&dir),
                Err(missing) => searched.push((dir, missing)),
            }
        }
        match (self, &cache) {
            (Dataset::Mnist, Some(dir)) => match download::download(dir, mirror, &MNIST_FILES) {
                Ok(()) => self.load(dir),
                Err(err) => Err(MnistError::Unavailable {
                    dataset: self.name(),
                    searched,
                    download: Box::new(err),
                    hint: self.hint(cache.as_deref()),
                }),
            },
            _ => Err(MnistError::NotFound { dataset: self.name(), searched, hint: self.hint(cache.as_deref()) }),
        }
    }

    fn hint(self, cache: Option<&Path>) -> String {
        let cache =
            cache.map_or_else(|| "(no cache directory: HOME is unset)".to_string(), |c| c.display().to_string());
        match self {
            Dataset::Mnist => format!(
                "Supply the four files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], \
                 t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]) in one of these ways: pass their directory \
                 (`cargo xtask train-mnist --data-dir DIR`, or `Mnist::locate(Some(dir))`); set {ENV_MNIST_DIR}=DIR; \
                 or copy them into the cache {cache}. Online, Mnist::locate(None) downloads and verifies them there \
                 (mirror: KILN_MNIST_MIRROR)."
            ),
            Dataset::FashionMnist => format!(
                "Install Debian's package (apt-get install dataset-fashion-mnist, into {FASHION_MNIST_SYSTEM_DIR}), \
                 pass the directory of the four Fashion-MNIST IDX files explicitly, set {ENV_FASHION_MNIST_DIR}=DIR, \
                 or copy them into the cache {cache}."
            ),
        }
    }
}

/// The paths of the four files in `dir` (raw preferred over `.gz`), or a description of what is missing.
pub fn find_files(dir: &Path) -> std::result::Result<[PathBuf; 4], String> {
    if !dir.is_dir() {
        return Err("no such directory".into());
    }
    let mut found: Vec<PathBuf> = Vec::with_capacity(4);
    let mut missing = Vec::new();
    for name in FILE_NAMES {
        let dotted = name.replacen("-idx", ".idx", 1);
        let candidates = [name.to_string(), format!("{name}.gz"), dotted.clone(), format!("{dotted}.gz")];
        match candidates.iter().map(|c| dir.join(c)).find(|p| p.is_file()) {
            Some(p) => found.push(p),
            None => missing.push(format!("{name}[.gz]")),
        }
    }
    match <[PathBuf; 4]>::try_from(found) {
        Ok(files) if missing.is_empty() => Ok(files),
        _ => Err(format!("missing {}", missing.join(", "))),
    }
}

/// One split (train or test): `len` 28×28 u8 images and their labels, validated.
#[derive(Debug)]
pub struct Split {
    images: IdxArray,
    labels: IdxArray,
    len: usize,
}

impl Split {
    /// Loads and validates an images file and a labels file: u8 images of shape (n, 28, 28), u8 labels of shape
    /// (n), the same n, every label < 10.
    pub fn load(images_path: &Path, labels_path: &Path) -> Result<Split> {
        let images = IdxArray::open(images_path)?;
        let labels = IdxArray::open(labels_path)?;
        Self::from_arrays(images, labels)
    }

    /// Validates two already-read arrays as a split (see [`Split::load`]).
    pub fn from_arrays(images: IdxArray, labels: IdxArray) -> Result<Split> {
        let (ipath, lpath) = (images.path().to_path_buf(), labels.path().to_path_buf());
        if images.as_u8().is_none() {
            return Err(MnistError::invalid(&ipath, format!("images must be u8, found {:?}", images.dtype())));
        }
        let &[n, h, w] = images.dims() else {
            return Err(MnistError::invalid(
                &ipath,
                format!("images must have 3 dimensions, found {:?}", images.dims()),
            ));
        };
        if (h, w) != (IMAGE_SIDE, IMAGE_SIDE) {
            return Err(MnistError::invalid(&ipath, format!("images must be 28x28, found {h}x{w}")));
        }
        let Some(label_bytes) = labels.as_u8() else {
            return Err(MnistError::invalid(&lpath, format!("labels must be u8, found {:?}", labels.dtype())));
        };
        let &[m] = labels.dims() else {
            return Err(MnistError::invalid(
                &lpath,
                format!("labels must have 1 dimension, found {:?}", labels.dims()),
            ));
        };
        if m != n {
            return Err(MnistError::invalid(&lpath, format!("{m} labels for {n} images (in {})", ipath.display())));
        }
        if let Some((i, &l)) = label_bytes.iter().enumerate().find(|(_, l)| usize::from(**l) >= CLASSES) {
            return Err(MnistError::invalid(&lpath, format!("label {l} at index {i} is not below {CLASSES}")));
        }
        Ok(Split { images, labels, len: n })
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether the split is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// NHWC shape of the images: `[n, 28, 28, 1]`.
    pub fn shape(&self) -> [usize; 4] {
        [self.len, IMAGE_SIDE, IMAGE_SIDE, 1]
    }
    /// All pixels, image after image, row-major (`n·784` bytes).
    pub fn pixels(&self) -> &[u8] {
        self.images.payload()
    }
    /// All labels.
    pub fn labels(&self) -> &[u8] {
        self.labels.payload()
    }
    /// The pixels of image `i`, if it exists.
    pub fn image(&self, i: usize) -> Option<&[u8]> {
        (i < self.len).then(|| &self.pixels()[i * IMAGE_PIXELS..(i + 1) * IMAGE_PIXELS])
    }
    /// The label of example `i`, if it exists.
    pub fn label(&self, i: usize) -> Option<u8> {
        self.labels().get(i).copied()
    }
    /// How many examples each class has.
    pub fn class_counts(&self) -> [usize; CLASSES] {
        let mut counts = [0; CLASSES];
        for &l in self.labels() {
            counts[usize::from(l)] += 1;
        }
        counts
    }
    /// The images file.
    pub fn images_file(&self) -> &Path {
        self.images.path()
    }
    /// The labels file.
    pub fn labels_file(&self) -> &Path {
        self.labels.path()
    }

    /// Images `range` as an NHWC f32 tensor, raw 0..255 or scaled to [0, 1]. (Training reads [`Split::images`],
    /// which converts per batch without holding the floats.)
    pub fn images_f32(&self, range: std::ops::Range<usize>, scale: crate::Scale) -> Result<Tensor> {
        if range.start > range.end || range.end > self.len {
            return Err(MnistError::invalid(
                self.images.path(),
                format!("range {}..{} is outside 0..{}", range.start, range.end, self.len),
            ));
        }
        let pixels = &self.pixels()[range.start * IMAGE_PIXELS..range.end * IMAGE_PIXELS];
        let factor = scale.factor();
        Tensor::from_fn(&[range.len(), IMAGE_SIDE, IMAGE_SIDE, 1], |i| f32::from(pixels[i]) * factor)
            .map_err(|e| MnistError::invalid(self.images.path(), e.to_string()))
    }

    /// The images as a model input: samples of shape `(28, 28, 1)`, each pixel converted to `f32` and scaled as
    /// each batch is gathered. `.take(n)` keeps the first `n`.
    pub fn images(&self, scale: crate::Scale) -> Result<ImagesU8<'_>> {
        ImagesU8::new(self.pixels(), [IMAGE_SIDE, IMAGE_SIDE, 1], scale.factor())
            .map_err(|e| MnistError::invalid(self.images.path(), e.to_string()))
    }

    /// The labels as one-hot targets of 10 columns (the notebook's `pd.get_dummies(y)`), built per batch.
    /// `.take(n)` keeps the first `n`; `.head(n)` makes a tensor of them for printing.
    pub fn one_hot(&self) -> Result<OneHot<'_>> {
        OneHot::new(self.labels(), CLASSES).map_err(|e| MnistError::invalid(self.labels.path(), e.to_string()))
    }

    /// The labels as class indices, the targets of `sparse_categorical_crossentropy`.
    pub fn class_indices(&self) -> ClassIndices<'_> {
        ClassIndices::new(self.labels())
    }
}

/// A loaded dataset: the training and test splits.
#[derive(Debug)]
pub struct Mnist {
    dataset: Dataset,
    dir: PathBuf,
    /// The 60,000 training examples.
    pub train: Split,
    /// The 10,000 test examples.
    pub test: Split,
}

impl Mnist {
    /// Loads MNIST from `dir` (see [`Dataset::load`]).
    pub fn load(dir: impl AsRef<Path>) -> Result<Mnist> {
        Dataset::Mnist.load(dir)
    }

    /// Finds MNIST: `explicit`, `MNIST_DIR`, the user cache, else a verified download (see [`Dataset::locate`]).
    pub fn locate(explicit: Option<&Path>) -> Result<Mnist> {
        Dataset::Mnist.locate(explicit)
    }

    /// Downloads the four MNIST files into `dir` from `mirror` (a base URL), verifying the SHA-256 of each
    /// decompressed file; files already present and correct are kept untouched. See [`crate::download`].
    pub fn download(dir: impl AsRef<Path>, mirror: &str) -> Result<()> {
        download::download(dir.as_ref(), mirror, &MNIST_FILES)
    }

    /// Which dataset this is.
    pub fn dataset(&self) -> Dataset {
        self.dataset
    }
    /// The directory it was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, n: u32) {
        use crate::idx::{IdxType, encode};
        let files = [
            ("train-images-idx3-ubyte", encode(IdxType::U8, &[n, 28, 28], &vec![0; n as usize * 784])),
            ("train-labels-idx1-ubyte", encode(IdxType::U8, &[n], &vec![1; n as usize])),
            ("t10k-images-idx3-ubyte", encode(IdxType::U8, &[1, 28, 28], &[0; 784])),
            ("t10k-labels-idx1-ubyte", encode(IdxType::U8, &[1], &[2])),
        ];
        for (name, bytes) in files {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }

    #[test]
    fn search_order() {
        let (a, b, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        write(a.path(), 2);
        write(b.path(), 3);
        write(c.path(), 4);
        let mirror = "http://127.0.0.1:9/never-used";
        let m = Dataset::Mnist;
        let all = |explicit: Option<&Path>| {
            m.locate_from(explicit, Some(b.path().into()), Some(c.path().into()), mirror).unwrap().train.len()
        };
        // Explicit beats the environment, which beats the cache.
        assert_eq!(all(Some(a.path())), 2);
        assert_eq!(all(None), 3);
        assert_eq!(m.locate_from(None, None, Some(c.path().into()), mirror).unwrap().train.len(), 4);
        // An explicit or environment directory that lacks the data is an error, not a silent fallback.
        let empty = tempfile::tempdir().unwrap();
        let err = m.locate_from(Some(empty.path()), None, Some(c.path().into()), mirror).unwrap_err();
        assert!(matches!(err, MnistError::NotFound { .. }));
        assert!(m.locate_from(None, Some(empty.path().into()), Some(c.path().into()), mirror).is_err());
        // An empty cache leads to the download, into the cache, from the mirror.
        let cache = empty.path().join("kiln/mnist");
        let err = m.locate_from(None, None, Some(cache.clone()), mirror).unwrap_err();
        // Offline, the error names where it looked and every way to supply the files.
        let msg = err.to_string();
        for needle in ["--data-dir", ENV_MNIST_DIR, &cache.display().to_string(), "downloading failed"] {
            assert!(msg.contains(needle), "{needle:?} missing from: {msg}");
        }
        match err {
            MnistError::Unavailable { download, searched, .. } => {
                assert_eq!(searched.len(), 1);
                match *download {
                    MnistError::Download { url, path, .. } => {
                        assert!(url.starts_with(mirror) && url.ends_with("train-images-idx3-ubyte.gz"));
                        assert!(path.starts_with(&cache));
                    }
                    other => panic!("expected a download attempt, got {other}"),
                }
            }
            other => panic!("expected Unavailable, got {other}"),
        }
        // Fashion-MNIST never downloads: after the cache comes the Debian package's directory, and if that is
        // missing too, the error names every place searched.
        match Dataset::FashionMnist.locate_from(None, None, Some(cache.clone()), mirror) {
            Ok(found) => assert_eq!(found.dir(), Path::new(FASHION_MNIST_SYSTEM_DIR)),
            Err(err) => {
                assert!(!Path::new(FASHION_MNIST_SYSTEM_DIR).is_dir(), "{err}");
                let msg = err.to_string();
                assert!(msg.contains(&cache.display().to_string()) && msg.contains(FASHION_MNIST_SYSTEM_DIR), "{msg}");
            }
        }
    }

    #[test]
    fn cache_dir_follows_xdg_rules() {
        let dir = Dataset::Mnist.cache_dir();
        if let Some(dir) = dir {
            assert!(dir.ends_with("kiln/mnist"));
        }
    }
}
