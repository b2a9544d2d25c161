"""`lab quiz`: the course's 10-question quiz, in Vietnamese (the original) or English.

Interactive in a terminal, or `lab quiz check "1a 2a 3a ..."` (or a file holding
that) to score a whole answer sheet. Every answer comes with its reason. The
numbers that depend on code are explained from the lab's own model, not only
quoted from the course: question 7's channel counts, for the seed tutorial's D and
for the lab's default one, are read from real discriminators, built lazily so the
quiz does not import torch until then.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lab.config import ExperimentConfig, apply
from lab.errors import LabError

LANGS = ("vi", "en")
LETTERS = "abcd"


@dataclass(frozen=True)
class Text:
    question: str
    options: tuple[str, str, str, str]
    reason: str


@dataclass(frozen=True)
class Question:
    answer: str
    vi: Text
    en: Text
    lab_note: Callable[[str], str] | None = None  # an explanation computed from the lab's code

    def text(self, lang: str) -> Text:
        return self.vi if lang == "vi" else self.en

    def explain(self, lang: str) -> str:
        return self.text(lang).reason + (f" {self.lab_note(lang)}" if self.lab_note else "")


def head_channels(config: ExperimentConfig | None = None) -> tuple[int, int, int]:
    """(image, text, total) input channels of D's final conv, read from the discriminator the config builds."""
    from torch import nn

    from lab.parts.build import build_discriminator

    d = build_discriminator(config or ExperimentConfig(), text_dim=768)
    image = [m for m in d.image_net.modules() if isinstance(m, nn.Conv2d)][-1].out_channels
    return image, d.head.in_channels - image, d.head.in_channels


SEED_DISCRIMINATOR = {
    "discriminator.width": 128,
    "discriminator.text_proj_dim": 256,
}  # `Discriminator(3, 128, 768, 256)`


def _head_note(lang: str) -> str:
    """The channel count for the seed tutorial's own D and for the lab's default D, both read from built networks."""
    seed_image, seed_text, seed_total = head_channels(apply(ExperimentConfig(), SEED_DISCRIMINATOR))
    image, text, total = head_channels()
    if lang == "vi":
        return (
            f"Mã gốc của bài hướng dẫn, `Discriminator(3, 128, 768, 256)` (width=128, văn bản chiếu xuống 256), cho "
            f"{seed_image} + {seed_text} = {seed_total} kênh: không có trong các lựa chọn, và (d) {seed_image} chỉ là số kênh ảnh của nó. "
            f"Trong lab này (discriminator mặc định: width={image // 8}, text_proj_dim={text}) lớp đó có "
            f"{image} kênh ảnh + {text} kênh văn bản = {total} kênh đầu vào (DCGANDiscriminator(...).head.in_channels)."
        )
    return (
        f"The seed tutorial's own code, `Discriminator(3, 128, 768, 256)` (width=128, text projected to 256), gives "
        f"{seed_image} + {seed_text} = {seed_total} channels: none of the options, and (d) {seed_image} is its image channels alone. "
        f"In this lab (default discriminator: width={image // 8}, text_proj_dim={text}) that layer has "
        f"{image} image + {text} text = {total} input channels (DCGANDiscriminator(...).head.in_channels)."
    )


QUESTIONS: tuple[Question, ...] = (
    Question(
        "a",
        Text(
            "Mục tiêu chính của bài toán sinh ảnh từ văn bản (text-to-image) là gì?",
            (
                "Tạo ra hình ảnh phù hợp với mô tả văn bản",
                "Viết câu mô tả cho một hình ảnh cho trước",
                "Phân loại ảnh hoa theo loài",
                "Dịch văn bản sang ngôn ngữ khác",
            ),
            "Text-to-image nhận một câu mô tả và sinh ra ảnh khớp với nội dung câu đó; (b) là bài toán ngược lại, sinh chú thích cho ảnh (image captioning).",
        ),
        Text(
            "What is the main goal of text-to-image generation?",
            (
                "Create images that match a text description",
                "Write a caption for a given image",
                "Classify flower images by species",
                "Translate text into another language",
            ),
            "Text-to-image takes a description and produces an image that matches it; (b) is the reverse task, image captioning.",
        ),
    ),
    Question(
        "a",
        Text(
            "Bài học dùng biến thể GAN nào, trong đó bộ phân biệt còn học cách coi ảnh thật đi kèm mô tả không khớp là giả?",
            ("GAN-CLS", "CycleGAN", "StyleGAN", "Pix2Pix"),
            "GAN-CLS (Reed và cộng sự, 2016) thêm cặp (ảnh thật, mô tả sai) với nhãn giả, buộc D kiểm tra ảnh và văn bản có khớp nhau không; "
            "CycleGAN và Pix2Pix chuyển ảnh thành ảnh, StyleGAN không có điều kiện văn bản.",
        ),
        Text(
            "Which GAN variant does the course use, in which the discriminator also learns to call a real image with a mismatched caption fake?",
            ("GAN-CLS", "CycleGAN", "StyleGAN", "Pix2Pix"),
            "GAN-CLS (Reed et al., 2016) adds the (real image, wrong caption) pair labelled fake, so D must check that image and text match; "
            "CycleGAN and Pix2Pix translate images to images, StyleGAN has no text condition.",
        ),
    ),
    Question(
        "a",
        Text(
            "Vai trò của bộ sinh (generator) là gì?",
            (
                "Tạo ảnh mới từ vector nhiễu và embedding văn bản",
                "Quyết định ảnh là thật hay giả",
                "Biến câu mô tả thành vector embedding",
                "Chọn ảnh giống nhất trong tập dữ liệu",
            ),
            "G đưa (nhiễu, embedding văn bản đã chiếu) qua các lớp tích chập chuyển vị để tạo một ảnh mới trong khoảng [-1, 1]; "
            "đánh giá thật/giả (b) là việc của D, mã hoá câu (c) là việc của bộ mã hoá văn bản (đóng băng).",
        ),
        Text(
            "What does the generator do?",
            (
                "Creates a new image from a noise vector and the text embedding",
                "Decides whether an image is real or fake",
                "Turns the caption into an embedding vector",
                "Picks the most similar image from the data set",
            ),
            "G maps (noise, projected text embedding) through transposed convolutions to a new image in [-1, 1]; "
            "judging real/fake (b) is D's job, encoding the caption (c) the frozen text encoder's.",
        ),
    ),
    Question(
        "a",
        Text(
            "Vai trò của bộ phân biệt (discriminator) là gì?",
            (
                "Nhận ảnh và embedding văn bản, cho biết cặp đó là thật (và khớp) hay giả",
                "Sinh ảnh từ văn bản",
                "Tính embedding của câu mô tả",
                "Đổi kích thước ảnh về 64x64",
            ),
            "D chấm điểm cặp (ảnh, embedding văn bản): ảnh thật với đúng mô tả là thật; ảnh sinh ra, hoặc ảnh thật với mô tả sai, là giả.",
        ),
        Text(
            "What does the discriminator do?",
            (
                "Takes an image and a text embedding and says whether the pair is real (and matching) or fake",
                "Generates an image from the text",
                "Computes the caption's embedding",
                "Resizes images to 64x64",
            ),
            "D scores (image, text embedding) pairs: a real image with its own caption is real; a generated image, or a real image with a wrong caption, is fake.",
        ),
    ),
    Question(
        "d",
        Text(
            "Mô hình trong bài KHÔNG dùng loại mạng nào?",
            ("Mạng tích chập (CNN)", "Transformer", "Lớp kết nối đầy đủ (Linear)", "Mạng hồi quy (RNN)"),
            "G và D là mạng tích chập, bộ mã hoá văn bản (MPNet) là transformer, phép chiếu văn bản là lớp Linear; không thành phần nào là mạng hồi quy. "
            "Bộ mã hoá gốc của Reed và cộng sự là char-CNN-RNN, bài học thay bằng sentence-BERT.",
        ),
        Text(
            "Which kind of network does the course's model NOT use?",
            (
                "Convolutional network (CNN)",
                "Transformer",
                "Fully connected (Linear) layers",
                "Recurrent network (RNN)",
            ),
            "G and D are convolutional, the text encoder (MPNet) is a transformer and the text projection is a Linear layer; no part is recurrent. "
            "Reed et al.'s original text encoder was a char-CNN-RNN, which the course replaces with sentence-BERT.",
        ),
    ),
    Question(
        "c",
        Text(
            "Vector embedding mà all-mpnet-base-v2 tạo ra cho một câu mô tả có bao nhiêu chiều?",
            ("256", "512", "768", "1024"),
            "MPNet-base có kích thước ẩn 768 và sentence-transformers lấy trung bình các vector token, nên mỗi câu thành một vector 768 chiều (trong lab: `encoder.dim`).",
        ),
        Text(
            "How many numbers are in the sentence embedding all-mpnet-base-v2 produces for one caption?",
            ("256", "512", "768", "1024"),
            "MPNet-base has hidden size 768 and sentence-transformers mean-pools the token vectors, so each caption becomes a 768-d vector (in the lab: `encoder.dim`).",
        ),
    ),
    Question(
        "c",
        Text(
            "Trong bộ phân biệt của khoá học (độ rộng đặc trưng 64, văn bản được chiếu xuống 64 kênh), lớp tích chập 4x4 cuối cùng có bao nhiêu kênh đầu vào?",
            ("512", "64", "576", "1024"),
            "Nhánh ảnh kết thúc với width*8 = 512 kênh ở kích thước 4x4; văn bản đã chiếu (64 số) được nhân bản trên lưới 4x4 rồi ghép vào: 512 + 64 = 576. "
            "(a) chỉ đếm kênh ảnh, (b) chỉ đếm kênh văn bản.",
        ),
        Text(
            "In the course's discriminator (feature width 64, text projected to 64 channels), how many input channels does the final 4x4 convolution have?",
            ("512", "64", "576", "1024"),
            "The image path ends with width*8 = 512 channels at 4x4; the projected text (64 numbers) is replicated over the 4x4 grid and concatenated: 512 + 64 = 576. "
            "(a) counts the image channels only, (b) the text channels only.",
        ),
        lab_note=_head_note,
    ),
    Question(
        "d",
        Text(
            "Hàm mất mát nào KHÔNG được dùng để huấn luyện mô hình?",
            (
                "BCE (entropy chéo nhị phân trên logit của D)",
                "MSE (khớp đặc trưng, feature matching)",
                "L1 (giữa ảnh sinh và ảnh thật)",
                "CTCLoss",
            ),
            "GAN-CLS dùng BCE cho D và cho thành phần đối kháng của G, MSE giữa trung bình đặc trưng của D trên ảnh giả và ảnh thật, L1 giữa ảnh giả và ảnh thật; "
            "CTC dùng để căn chỉnh chuỗi (giọng nói, chữ viết tay), không dùng ở đây.",
        ),
        Text(
            "Which loss is NOT used to train the model?",
            (
                "BCE (binary cross-entropy on D's logits)",
                "MSE (feature matching)",
                "L1 (generated vs real pixels)",
                "CTCLoss",
            ),
            "GAN-CLS uses BCE for D and for G's adversarial term, MSE between D's mean features of fake and real images, and L1 between fake and real images; "
            "CTC aligns sequences (speech, handwriting) and has no place here.",
        ),
    ),
    Question(
        "a",
        Text(
            "Bộ mã hoá văn bản all-mpnet-base-v2 thuộc họ mô hình nào?",
            (
                "Họ BERT (MPNet, huấn luyện kiểu sentence-BERT)",
                "Họ GPT (mô hình ngôn ngữ chỉ có decoder)",
                "Bộ mã hoá ảnh của CLIP",
                "Word2Vec (embedding từ)",
            ),
            "MPNet là bộ mã hoá transformer hai chiều kiểu BERT; all-mpnet-base-v2 được tinh chỉnh bằng sentence-transformers (sentence-BERT) để vector của các câu gần nghĩa nằm gần nhau.",
        ),
        Text(
            "Which model family does the text encoder all-mpnet-base-v2 belong to?",
            (
                "BERT family (MPNet, trained as a sentence-BERT model)",
                "GPT family (decoder-only language models)",
                "CLIP image encoders",
                "Word2Vec word embeddings",
            ),
            "MPNet is a BERT-style bidirectional transformer encoder; all-mpnet-base-v2 is fine-tuned with sentence-transformers (sentence-BERT) so that similar sentences get nearby vectors.",
        ),
    ),
    Question(
        "b",
        Text(
            "Khi dùng MPNet, lớp Linear đầu tiên của phép chiếu văn bản trong G và D nhận đầu vào (in_features) bao nhiêu chiều?",
            ("256", "768", "100", "356"),
            "Phép chiếu nhận embedding câu 768 chiều và nén xuống 256 (Linear 768 -> 256, BatchNorm1d, LeakyReLU); 256 là đầu ra, 100 là kích thước nhiễu, "
            "356 = 100 + 256 là số kênh vào lớp ConvTranspose đầu tiên của G.",
        ),
        Text(
            "With MPNet as the encoder, what is the input size (in_features) of the first Linear layer of the text projection in G and D?",
            ("256", "768", "100", "356"),
            "The projection takes the 768-d sentence embedding and squeezes it to 256 (Linear 768 -> 256, BatchNorm1d, LeakyReLU); 256 is its output, 100 the noise size, "
            "356 = 100 + 256 the input channels of G's first ConvTranspose.",
        ),
    ),
)

UI = {
    "vi": {
        "prompt": "Trả lời (a-d, q để dừng): ",
        "invalid": "Hãy nhập a, b, c hoặc d (q để dừng).",
        "right": "Đúng",
        "wrong": "Sai, đáp án là",
        "score": "Điểm",
        "none": "chưa trả lời",
    },
    "en": {
        "prompt": "Answer (a-d, q to stop): ",
        "invalid": "Please type a, b, c or d (q to stop).",
        "right": "Right",
        "wrong": "Wrong, the answer is",
        "score": "Score",
        "none": "no answer",
    },
}

ANSWER = re.compile(r"(\d+)\s*[.):=-]?\s*([a-zA-Z])(?![a-zA-Z])")
SEPARATORS = re.compile(r"[\s,;]*")
ECHO_CHARS = 20  # how much of a bad token an error message repeats


def _cut(token: str) -> str:
    """A bad token as an error message may show it: a pasted 10 MB blob must not come back in full."""
    return token if len(token) <= ECHO_CHARS else token[:ECHO_CHARS] + "..."


def parse_answers(text: str) -> dict[int, str]:
    """`"1a 2c, 3:b"` -> `{1: "a", 2: "c", 3: "b"}`; anything else is a LabError saying what is wrong."""
    answers: dict[int, str] = {}
    pos = SEPARATORS.match(text).end()
    if pos == len(text):
        raise LabError("no answers given; write them as question number + letter, e.g. '1a 2c 3b'")
    while pos < len(text):
        match = ANSWER.match(text, pos)
        if not match:
            raise LabError(
                f"cannot read '{_cut(text[pos:].split()[0])}'; write each answer as question number + letter, e.g. '1a 2c 3b'"
            )
        digits, letter = match[1].lstrip("0") or "0", match[2].lower()
        if len(digits) > 2 or not 1 <= int(digits) <= len(QUESTIONS):  # int() of thousands of digits would raise
            raise LabError(f"there is no question {_cut(match[1])}; the quiz has questions 1-{len(QUESTIONS)}")
        number = int(digits)
        if letter not in LETTERS:
            raise LabError(f"question {number}: '{letter}' is not an option; choose a, b, c or d")
        if number in answers:
            raise LabError(f"question {number} is answered twice")
        answers[number] = letter
        pos = SEPARATORS.match(text, match.end()).end()
    return answers


def read_answers(arg: str) -> str:
    """The answer string itself, or the contents of the file it names."""
    path = Path(arg)
    try:
        if path.is_file():
            return path.read_text(encoding="utf-8", errors="replace")
    except OSError:  # a name too long to be a file is an answer string
        pass
    if os.sep in arg or arg.endswith(".txt"):
        raise LabError(f"answer file not found or unreadable: {_cut(arg)}")
    return arg


def check(answers: dict[int, str], lang: str) -> tuple[int, str]:
    """(number right, a report with the verdict and reason of every answered question). A question left out
    is counted wrong and shown as unanswered, without its answer: the report never hands out the key."""
    ui, right, lines = UI[lang], 0, []
    for number, question in enumerate(QUESTIONS, 1):
        given = answers.get(number)
        if given is None:
            lines.append(f"✗ {number:>2}. -  ({ui['none']})")
            continue
        ok = given == question.answer
        right += ok
        verdict = ui["right"] if ok else f"{ui['wrong']} {question.answer}"
        lines.append(f"{'✓' if ok else '✗'} {number:>2}. {given}  {verdict}")
        lines.append(f"      {question.explain(lang)}")
    lines.append(f"{ui['score']}: {right}/{len(QUESTIONS)}")
    return right, "\n".join(lines)


def _ask(ui: dict[str, str], read: Callable[[str], str], write: Callable[[str], None]) -> str:
    """One valid reply: a letter, or "q" to stop (also at end of input)."""
    while True:
        try:
            reply = read(ui["prompt"]).strip().lower()
        except EOFError:
            return "q"
        if len(reply) == 1 and reply in LETTERS + "q":
            return reply
        write(ui["invalid"])


def interactive(lang: str, read: Callable[[str], str] = input, write: Callable[[str], None] = print) -> int:
    """Ask every question in turn, explain each answer; returns the number right. 'q' or end of input stops."""
    ui, right, asked = UI[lang], 0, 0
    for number, question in enumerate(QUESTIONS, 1):
        text = question.text(lang)
        write(f"\n{number}. {text.question}")
        for letter, option in zip(LETTERS, text.options):
            write(f"   {letter}) {option}")
        reply = _ask(ui, read, write)
        if reply == "q":
            break
        asked += 1
        ok = reply == question.answer
        right += ok
        verdict = f"✓ {ui['right']}" if ok else f"✗ {ui['wrong']} {question.answer}"
        write(f"{verdict}. {question.explain(lang)}")
    write(f"\n{ui['score']}: {right}/{asked}")
    return right


def main(args: argparse.Namespace) -> int:
    """`lab quiz [--lang vi|en]` and `lab quiz check ANSWERS`: exit 0 at 10/10, 1 below."""
    if args.quiz_command == "check":
        right, report = check(parse_answers(read_answers(args.answers)), args.lang)
        print(report)
        return 0 if right == len(QUESTIONS) else 1
    interactive(args.lang)
    return 0
