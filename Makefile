# The front door: make demo, make test, make bench, make lint.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Keep every library away from the network: weights come from --weights-dir or --random-init.
export YOLO_OFFLINE := 1
export HARMCACHE_OFFLINE ?= 1
export PYTHONUNBUFFERED := 1

DEMO_DIR ?= demo
DEMO_CACHE ?= $(DEMO_DIR)/cache
DEMO_RUNS ?= $(DEMO_DIR)/runs
HC := $(BIN)/harmcache
KNOWN := $(DEMO_DIR)/known
MULTI := $(DEMO_DIR)/multiset
FFMPEG := ffmpeg -loglevel error -y -nostdin

.PHONY: install system-packages demo test test-fast bench lint clean

install: $(STAMP) system-packages

# The ffmpeg CLI makes the tests' real-upload media (rotation metadata, edit lists, 7.1 sound,
# old containers) and shows the frames decoding must match; Debian's package, never by hand.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
system-packages:
	@command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || { \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends ffmpeg; }

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip "setuptools<81" wheel
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: install
	rm -rf $(DEMO_DIR)
	$(HC) demo-data $(DEMO_DIR)/videos --n-long 0
	$(HC) extract $(DEMO_DIR)/videos --out $(DEMO_CACHE) --random-init --frames 8 --windows 1 \
		--yolo-imgsz 160 --slowfast-short-side 128 --slowfast-crop 128
	$(HC) cache info $(DEMO_CACHE)
	$(HC) cache verify $(DEMO_CACHE)
	@echo "extract commits a few videos per shard (crash safety); compact merges them for fast reads"
	$(HC) cache compact $(DEMO_CACHE)
	@echo "deleting the demo videos: stage two reads the cache alone"
	find $(DEMO_DIR)/videos -name '*.mp4' -delete
	$(HC) train --cache $(DEMO_CACHE) --labels $(DEMO_DIR)/videos/labels.csv --head transformer --out $(DEMO_RUNS)/transformer
	$(HC) train --cache $(DEMO_CACHE) --labels $(DEMO_DIR)/videos/labels.csv --head lightgbm --out $(DEMO_RUNS)/lightgbm --split-from $(DEMO_RUNS)/transformer
	$(HC) train --cache $(DEMO_CACHE) --labels $(DEMO_DIR)/videos/labels.csv --head logreg --out $(DEMO_RUNS)/logreg --split-from $(DEMO_RUNS)/transformer
	$(HC) sweep-threshold $(DEMO_RUNS)/transformer
	$(HC) sweep-threshold $(DEMO_RUNS)/lightgbm
	$(HC) sweep-threshold $(DEMO_RUNS)/logreg
	$(HC) compare $(DEMO_RUNS)/transformer $(DEMO_RUNS)/lightgbm $(DEMO_RUNS)/logreg
	@echo "a guarantee needs labelled harmful videos: the default validation share is too few (exit 5)"
	-$(HC) sweep-threshold $(DEMO_RUNS)/transformer --objective 'recall>=0.9' --confidence 0.9
	$(HC) train --cache $(DEMO_CACHE) --labels $(DEMO_DIR)/videos/labels.csv --head logreg --out $(DEMO_RUNS)/certified --val-fraction 0.5 --test-fraction 0.2
	$(HC) sweep-threshold $(DEMO_RUNS)/certified --objective 'recall>=0.8' --confidence 0.9
	$(HC) evaluate $(DEMO_RUNS)/certified
	@echo "long videos: one short harmful event in each harmful one; where is it?"
	$(HC) demo-data $(DEMO_DIR)/longset --n-safe 1 --n-long 4
	$(HC) extract $(DEMO_DIR)/longset/long --out $(DEMO_DIR)/long-cache --random-init \
		--extractors clip,slowfast --fps 2 --window-every 2 --slowfast-short-side 64 --slowfast-crop 64
	$(HC) train --cache $(DEMO_DIR)/long-cache --labels $(DEMO_DIR)/longset/long/labels.csv --head mil \
		--out $(DEMO_RUNS)/mil --val-fraction 0.25 --test-fraction 0.25 --events $(DEMO_DIR)/longset/long/events.csv
	$(HC) evaluate $(DEMO_RUNS)/mil --events $(DEMO_DIR)/longset/long/events.csv
	$(HC) predict $(DEMO_DIR)/longset/long/harmful/long_harmful_000.mp4 --run $(DEMO_RUNS)/mil
	@echo "sound: clips whose pictures are alike and whose sound alone holds the harm (a loud burst)"
	$(HC) demo-data $(DEMO_DIR)/soundset --n-safe 1 --n-long 0 --n-audio 20
	$(HC) extract $(DEMO_DIR)/soundset/audio --out $(DEMO_DIR)/sound-cache --random-init \
		--extractors clip,audio --frames 4
	$(HC) train --cache $(DEMO_DIR)/sound-cache --labels $(DEMO_DIR)/soundset/audio/labels.csv --head logreg \
		--features audio --out $(DEMO_RUNS)/sound-audio --val-fraction 0.25 --test-fraction 0.4
	$(HC) train --cache $(DEMO_DIR)/sound-cache --labels $(DEMO_DIR)/soundset/audio/labels.csv --head logreg \
		--features clip --out $(DEMO_RUNS)/sound-clip --split-from $(DEMO_RUNS)/sound-audio
	$(HC) compare $(DEMO_RUNS)/sound-audio $(DEMO_RUNS)/sound-clip
	@echo "still images: jpg, png, webp and bmp beside videos; SlowFast gives them no window (masked)"
	$(HC) demo-data $(DEMO_DIR)/imageset --n-safe 1 --n-long 0 --n-images 16
	$(HC) extract $(DEMO_DIR)/imageset --out $(DEMO_DIR)/image-cache --random-init --frames 8 --windows 1 \
		--yolo-imgsz 160 --slowfast-short-side 128 --slowfast-crop 128
	$(HC) cache info $(DEMO_DIR)/image-cache
	$(HC) train --cache $(DEMO_DIR)/image-cache --labels $(DEMO_DIR)/imageset/images/labels.csv --head logreg \
		--features clip --out $(DEMO_RUNS)/images --val-fraction 0.25 --test-fraction 0.25
	$(HC) predict $(DEMO_DIR)/imageset/images/harmful/image_harmful_001.png --run $(DEMO_RUNS)/images
	@echo "moderation categories: fighting, weapons, gore and screaming planted in picture and sound, violence derived by the taxonomy; a certified remove/review policy and its review queue"
	$(HC) demo-data $(MULTI) --n-safe 1 --n-long 0 --n-multi 96
	$(HC) extract $(MULTI)/multi --out $(DEMO_DIR)/multi-cache --random-init --extractors clip,slowfast,audio \
		--frames 8 --windows 1 --slowfast-short-side 64 --slowfast-crop 64
	mkdir -p $(DEMO_DIR)/uploads && mv $(MULTI)/multi/multi_007.mp4 $(DEMO_DIR)/uploads/
	@echo "deleting the multi-category videos: stage two reads the cache alone"
	find $(MULTI)/multi -name '*.mp4' -delete
	$(HC) train --cache $(DEMO_DIR)/multi-cache --labels $(MULTI)/multi/labels.csv --taxonomy $(MULTI)/multi/taxonomy.yaml \
		--head transformer --out $(DEMO_RUNS)/multi-transformer
	$(HC) train --cache $(DEMO_DIR)/multi-cache --labels $(MULTI)/multi/labels.csv --taxonomy $(MULTI)/multi/taxonomy.yaml \
		--head lightgbm --out $(DEMO_RUNS)/multi-lightgbm
	$(HC) sweep-threshold $(DEMO_RUNS)/multi-transformer --policy $(MULTI)/multi/policy.yaml
	$(HC) sweep-threshold $(DEMO_RUNS)/multi-lightgbm --policy $(MULTI)/multi/policy.yaml
	$(HC) evaluate $(DEMO_RUNS)/multi-transformer
	$(HC) evaluate $(DEMO_RUNS)/multi-lightgbm
	$(HC) compare $(DEMO_RUNS)/multi-transformer $(DEMO_RUNS)/multi-lightgbm
	$(HC) predict $(DEMO_DIR)/uploads/multi_007.mp4 --run $(DEMO_RUNS)/multi-transformer
	$(HC) queue --run $(DEMO_RUNS)/multi-transformer --out $(DEMO_DIR)/review-queue.csv
	head -4 $(DEMO_DIR)/review-queue.csv
	@echo "known content: a bank of known clips; a re-encode, a half-size copy and an upload holding the clip at 4-10 s match it, other footage does not"
	mkdir -p $(KNOWN)
	$(FFMPEG) -f lavfi -i mandelbrot=size=320x240:rate=25 -t 6 -pix_fmt yuv420p $(KNOWN)/known.mp4
	$(FFMPEG) -f lavfi -i life=size=320x240:rate=25:mold=10:ratio=0.4 -t 4 -pix_fmt yuv420p $(KNOWN)/before.mp4
	$(FFMPEG) -f lavfi -i cellauto=size=320x240:rate=25 -t 4 -pix_fmt yuv420p $(KNOWN)/after.mp4
	$(FFMPEG) -i $(KNOWN)/before.mp4 -i $(KNOWN)/known.mp4 -i $(KNOWN)/after.mp4 \
		-filter_complex "[0:v][1:v][2:v]concat=n=3:v=1[v]" -map "[v]" -pix_fmt yuv420p $(KNOWN)/upload.mp4
	$(FFMPEG) -i $(KNOWN)/known.mp4 -c:v libx264 -crf 35 $(KNOWN)/reencoded.mp4
	$(FFMPEG) -i $(KNOWN)/known.mp4 -vf scale=160:120 $(KNOWN)/half.mp4
	$(FFMPEG) -i $(KNOWN)/known.mp4 -vf hflip $(KNOWN)/flipped.mp4
	$(FFMPEG) -f lavfi -i testsrc2=size=320x240:rate=25 -t 6 -pix_fmt yuv420p $(KNOWN)/other.mp4
	$(HC) bank add $(DEMO_DIR)/bank $(KNOWN)/known.mp4 --label known-clip
	$(HC) bank info $(DEMO_DIR)/bank
	$(HC) match $(KNOWN)/upload.mp4 $(KNOWN)/reencoded.mp4 $(KNOWN)/half.mp4 $(KNOWN)/flipped.mp4 $(KNOWN)/other.mp4 --bank $(DEMO_DIR)/bank
	@echo "the demo cache's videos are hashed too (pdq is a default extractor): near-duplicates in it"
	$(HC) cache duplicates $(DEMO_CACHE)

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

bench: install
	$(BIN)/python -m bench

lint: install
	$(BIN)/ruff check harmcache cli tests bench
	$(BIN)/ruff format --check harmcache cli tests bench

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
