"""Attach spinal level, side, zone, roots and severity to every target, and emit raw findings.

Levels are found by regular expressions over the text (``patterns/lexicon.json``), grouped into lists
and ranges ("L4-5 and L5-S1", "L3-4 through L5-S1"), and attached to targets sentence by sentence:

* a group after a preposition ("... stenosis at L4-5") claims the targets of its clause before it;
* any other group ("At L4-5, ...", "L4-5 disc bulge") claims the targets after it in its clause;
* a target left over takes the nearest group of its sentence, else the level in force in its
  paragraph (a level header such as "L4-5:", or the last level named next to a finding), else the
  level its stated root implies.

Side, severity, zone and stated roots are read from a short window before the target (its noun
phrase), the target itself, and a short window after it ("... stenosis, moderate on the left").
Targets joined by "and"/"or" share their modifiers; an impingement target linked to the finding
before it ("... stenosis with impingement of ...") takes that finding's side and zone.
"""

import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field

from spacy.language import Language
from spacy.tokens import Doc

from ..leading import LeadingScan, requires_digit
from ..resources import load_rules, lowercase_pattern
from ..schema import SEVERITY_GRADE
from .component import BatchComponent, get_doc_value, get_span_value, set_doc_value
from .sections import doc_text, section_at
from .sentences import sentence_bounds
from .targets import CONCEPT_LABEL, SPAN_GROUP

if not Doc.has_extension("report_findings"):
    Doc.set_extension("report_findings", default=())
if not Doc.has_extension("report_level_mentions"):
    Doc.set_extension("report_level_mentions", default=None)  # (start, levels) of each level mention; the model reuses them

VERTEBRAE = [f"C{i}" for i in range(1, 8)] + [f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)] + ["S1", "S2"]
_VIDX = {v: i for i, v in enumerate(VERTEBRAE)}
_DIGIT = re.compile(r"\d")
SPINE_KINDS_WITHOUT_SIDE = {"central_canal_stenosis", "cord_compression", "cauda_equina_compression"}
STATUS_ATTRS = {
    "NEGATED_EXISTENCE": "negated",
    "POSSIBLE_EXISTENCE": "uncertain",
    "PROBABLE_EXISTENCE": "uncertain",
    "HYPOTHETICAL": "hypothetical",
    "HISTORICAL": "historical",
}


@dataclass
class LevelGroup:
    """Consecutive level mentions read as one list or range."""

    start: int
    end: int
    levels: list[str]
    null: bool = False  # "at any level", "multilevel": explicitly no single level
    context: bool = False  # "at each level", "at both levels": the levels already in force
    claims: list[int] = field(default_factory=list)


def disc_levels(r1: str, n1: str, r2: str | None, n2: str) -> list[str]:
    """Canonical disc levels between two vertebrae ("L", "3", None, "5" -> L3-L4, L4-L5)."""
    r1 = r1.upper()
    r2 = (r2 or r1).upper()
    return levels_between(f"{r1}{int(n1)}", f"{r2}{int(n2)}", longest=8)


def levels_between(upper: str, lower: str, longest: int) -> list[str]:
    """The disc levels from vertebra ``upper`` down to ``lower`` (at most ``longest``), or [] if not a range."""
    if upper not in _VIDX or lower not in _VIDX:
        return []
    i, j = _VIDX[upper], _VIDX[lower]
    if j <= i or j - i > longest:
        return []
    return [f"{VERTEBRAE[k]}-{VERTEBRAE[k + 1]}" for k in range(i, j)]


class Attacher:
    """Compiled vocabulary and the attachment procedure (plain Python over character offsets)."""

    def __init__(self, fold: bool = False) -> None:
        """``fold``: the case-insensitive rules compiled for lowercased ASCII text (see ``findings``)."""
        lex = load_rules("lexicon")
        sev = load_rules("severity")
        anatomy = load_rules("anatomy")
        lv = lex["levels"]
        self.fold = fold

        def compile_(pattern: str) -> re.Pattern:
            return re.compile(lowercase_pattern(pattern)) if fold else re.compile(pattern, re.I)

        self.level_res = [
            compile_(lv["disc_level"]),
            re.compile(lv["disc_level_fused"]),
            compile_(lv["vertebra_pair"]),
            compile_(lv["vertebra_range"]),
            re.compile(lv["disc_level_spaced"]),
        ]
        self.context_levels = compile_(lv["context_levels"])
        self.junctions = [(compile_(j["pattern"]), j["level"]) for j in lv["junctions"]]
        self.null_levels = compile_(lv["null_levels"])
        self.range_joiner = compile_(lv["range_joiner"])
        self.range_prefix = compile_(lv["range_prefix"])
        self.list_joiner = compile_(lv["list_joiner"])
        self.backward_prep = compile_(lv["backward_prepositions"])
        self.sides = [(s["side"], compile_(s["pattern"])) for s in lex["sides"]]
        windows = lex["windows"]
        self.post_side = compile_(windows["post_side"])
        self.plural_bilateral = compile_(lex["plural_bilateral"])
        self.zones = [(z["zone"], compile_(z["pattern"])) for z in lex["zones"]]
        self.root_mention = compile_(lex["root_mention"])
        self.root_role_mention = compile_(lex["root_role_mention"])
        self.root_roles = lex["root_roles"]
        self.roots_need_digit = requires_digit(self.root_mention) and requires_digit(self.root_role_mention)
        self.clause_break = compile_(lex["clause_breaks"])
        self.coordination = compile_(lex["coordination"])
        self.linking = compile_(lex["linking"])
        self.pre_break = compile_(windows["pre_break"])
        self.post_break = compile_(windows["post_break"])
        sev_alt = "|".join(f"(?P<s{i}>{w['pattern']})" for i, w in enumerate(sev["words"]))
        self.sev_re = compile_(rf"\b(?:{sev_alt})\b")
        self.sev_names = [w["severity"] for w in sev["words"]]
        self.post_sev = compile_(
            rf"^\s*(?:(?:at|in)\s+(?:the\s+)?[CTL]\d[\w/-]*(?:\s+levels?)?\s*)?(?:,\s*|-\s*|\(\s*)?(?:(?:which|that)\s+)?(?:(?:is|are|appears?|appearing|measures?|measuring|seems?|remains?|being)\s+)?"
            rf"(?:(?:again|still|now|at\s+least|up\s+to|overall|also)\s+)?(?:{sev_alt})\b",
        )
        self.sev_pair = compile_(
            rf"(?P<a>{self._sev_plain(sev)})\s+(?:on\s+the\s+)?(?P<sa>left|right)\s*(?:,|and|/)\s*(?P<b>{self._sev_plain(sev)})\s+(?:on\s+the\s+)?(?P<sb>left|right)\s*$",
        )
        self._sev_plain_re = self._sev_plain(sev)
        # a severity word at the end of the window before a root relation (at most one word after it)
        self.sev_at_end = re.compile(rf"(?:{self._sev_plain_re})\W*(?:\w+\W+)?$", re.I)
        self.post_pairs = compile_(rf"\b({self._sev_plain(sev)})\s+(?:on\s+the\s+)?(left|right)\b")
        self.floors = [(f["grade"], compile_(rf"\b(?:{f['pattern']})")) for f in sev["relation_floors"]]
        # one pass that says whether any rule of a family can match a fragment (most fragments hold no
        # zone word): the family's rules run only when it does
        self.side_screen = any_of([r for side, r in self.sides if side != "central"])
        self.zone_screen = any_of([r for _, r in self.zones])
        self.floor_screen = any_of([r for _, r in self.floors])
        # folded: screens and side rules through their leading-character scans (same answers)
        self.side_screen_scan = LeadingScan(self.side_screen, scan=fold) if self.side_screen is not None else None
        self.zone_screen_scan = LeadingScan(self.zone_screen, scan=fold) if self.zone_screen is not None else None
        self.side_scans = [(side, LeadingScan(r, scan=fold)) for side, r in self.sides if side != "central"]
        # the expressions run over whole texts, through their leading-character scans where folded
        # (the two case-sensitive level forms read the text as written: scanned too)
        whole_text = [*self.level_res, *(r for r, _ in self.junctions), self.null_levels, self.context_levels,
                      self.root_role_mention]
        self.scans = {r: LeadingScan(r, scan=fold) for r in whole_text}
        self.exiting = {lv_["level"]: lv_["exiting"] for lv_ in anatomy["levels"]}
        self.traversing = {lv_["level"]: lv_["traversing"] for lv_ in anatomy["levels"]}
        self.level_of_exiting = {v: k for k, v in self.exiting.items()}
        self.level_of_traversing = {}
        for k, v in self.traversing.items():
            self.level_of_traversing.setdefault(v, k)
        self.zone_role = anatomy["zone_role"]

    @staticmethod
    def _sev_plain(sev: dict) -> str:
        return "|".join(f"(?:{w['pattern']})" for w in sev["words"])

    # ------------------------------------------------------------------ levels
    def level_groups(self, text: str, original: str | None = None) -> list[LevelGroup]:
        """``text`` as the rules expect it (lowercased when ``fold``); ``original``: the text as written,
        for the two case-sensitive level forms ("L45", "C3 C4"), when it differs."""
        mentions: list[tuple[int, int, list[str], tuple]] = []
        cased = (self.level_res[1], self.level_res[4])
        for regex in self.level_res:
            for start, end, m in self.scans[regex].matches(original if original is not None and regex in cased else text):
                gd = m.groupdict()
                r1, n1, r2, n2 = gd["r1"], gd["n1"], gd.get("r2"), gd["n2"]
                levels = disc_levels(r1, n1, r2, n2)
                if regex in cased and len(levels) != 1:
                    continue  # "L45", "C3 C4" only when the two numbers are adjacent
                if levels:
                    upper = f"{r1.upper()}{int(n1)}"
                    lower = f"{(r2 or r1).upper()}{int(n2)}"
                    mentions.append((start, end, levels, (upper, lower)))
        for regex, level in self.junctions:
            up, lo = level.split("-")
            for start, end in self.scans[regex].spans(text):
                mentions.append((start, end, [level], (up, lo)))
        for start, end in self.scans[self.null_levels].spans(text):
            mentions.append((start, end, [], ("", "")))
        for start, end in self.scans[self.context_levels].spans(text):
            mentions.append((start, end, [], ("ctx", "ctx")))
        mentions.sort(key=lambda x: (x[0], -x[1]))
        kept: list[tuple[int, int, list[str], tuple]] = []
        for mention in mentions:
            if kept and mention[0] < kept[-1][1]:
                continue
            kept.append(mention)
        groups: list[LevelGroup] = []
        prev = None
        for start, end, levels, span in kept:
            if not levels:
                if span == ("ctx", "ctx"):
                    groups.append(LevelGroup(start, end, [], context=True))
                else:
                    groups.append(LevelGroup(start, end, [], null=True))
                prev = None
                continue
            if prev is not None and groups and not groups[-1].null:
                between = text[prev[1]:start]
                if self.range_joiner.match(between):
                    expanded = self._expand(prev[3][0], span[1])
                    if expanded:
                        group = groups[-1]
                        group.levels = _unique(group.levels[:-len(prev[2])] + expanded)
                        group.end = end
                        prev = (start, end, levels, span)
                        continue
                if self.list_joiner.match(between):
                    group = groups[-1]
                    group.levels = _unique(group.levels + levels)
                    group.end = end
                    prev = (start, end, levels, span)
                    continue
            groups.append(LevelGroup(start, end, list(levels)))
            prev = (start, end, levels, span)
        return groups

    @staticmethod
    def _expand(upper: str, lower: str) -> list[str]:
        return levels_between(upper, lower, longest=10)

    def assign_levels(self, text, sentences, paragraphs, blocks, headers, targets, groups, root_levels) -> list[list[tuple]]:
        """For each target (sorted by start): a list of (level, severity_override, side_override).

        Fallback order for a target no group of its sentence claims: the nearest group of the
        sentence; the level carried in the paragraph; the level header in force (it reaches over
        list items and lines until a blank line or a section); a level implied by a stated root.
        """
        result: list[list[tuple]] = [[] for _ in targets]
        headers = sorted(headers)
        header_starts = [h[0] for h in headers]
        header_levels = {}
        group_starts = [g.start for g in groups]  # groups are in text order
        for h in headers:
            inside = []
            k = bisect_left(group_starts, h[2])  # the groups inside the header line, without scanning them all
            while k < len(groups) and groups[k].start <= h[1]:
                if groups[k].end <= h[1]:
                    inside.append(groups[k])
                k += 1
            header_levels[h[0]] = _unique([lv for g in inside for lv in g.levels])
        para_starts = list(paragraphs)
        block_starts = list(blocks)
        t_starts = [t[0] for t in targets]
        g_starts = [g.start for g in groups]
        context: list[str] = []
        header_ctx: list[str] = []
        current_para = current_block = -1
        for s_start, s_end in sentences:
            pi = bisect_right(para_starts, s_start) - 1
            if pi != current_para:
                current_para = pi
                context = []
            bi = bisect_right(block_starts, s_start) - 1
            if bi != current_block:
                current_block = bi
                header_ctx = []
            header = None
            hi = bisect_right(header_starts, s_start + 6) - 1
            if hi >= 0 and headers[hi][1] > s_start:
                header = headers[hi]
                header_ctx = list(header_levels.get(header[0], []))
                context = []
            ti0 = bisect_right(t_starts, s_start - 1)
            ti1 = bisect_right(t_starts, s_end - 1)
            if ti0 == ti1:
                continue  # no target starts in this sentence (most sentences)
            tidx = [i for i in range(ti0, ti1) if targets[i][1] <= s_end]
            if not tidx:
                continue
            gi0 = bisect_right(g_starts, s_start - 1)
            gi1 = bisect_right(g_starts, s_end - 1)
            sgroups = [g for g in groups[gi0:gi1] if header is None or g.start >= header[1]]
            for g in sgroups:
                if g.context:  # "at each level": the levels named before it in the sentence, else those in force
                    before = [lv for x in sgroups if x.end <= g.start and not x.context for lv in x.levels]
                    g.levels = _unique(before) or list(context or header_ctx)
                    g.claims = []
            claimed: dict[int, list] = {}
            self._claim(text, s_start, targets, tidx, sgroups, claimed)
            sentence_root_levels = [lv for (a, b, lv) in root_levels if a >= s_start and b <= s_end]
            for i in tidx:
                if i in claimed:
                    result[i] = claimed[i]
                    continue
                before = [g for g in sgroups if g.end <= targets[i][0]]
                after = [g for g in sgroups if g.start >= targets[i][1]]
                fallback = (before[-1].levels if before else None) or (after[0].levels if after else None)
                if fallback is None and not any(g.null for g in sgroups):
                    fallback = context or header_ctx or sentence_root_levels[:1]
                result[i] = [(lv, None, None) for lv in (fallback or [])]
            real = [g for g in sgroups if not g.null]
            if sgroups and sgroups[-1].null:
                context = []
            elif real:
                context = list(real[-1].levels)
        return result

    def _claim(self, text, s_start, targets, tidx, groups, claimed) -> None:
        prev_end = s_start
        last_backward = None
        for g in groups:
            before = [i for i in tidx if targets[i][0] >= prev_end and targets[i][1] <= g.start and i not in claimed]
            if before:
                gap_start = targets[before[-1]][1]
                pre = text[gap_start:g.start]
                region = text[targets[before[0]][0]:g.start]
                if not self.clause_break.search(pre) and (self.backward_prep.search(pre) or pre.strip(" \t(:-") == ""):
                    cut = [m.end() for m in self.clause_break.finditer(region)]
                    first = targets[before[0]][0] + (cut[-1] if cut else 0)
                    for i in before:
                        if targets[i][0] >= first:
                            claimed[i] = [(lv, None, None) for lv in g.levels]
                            g.claims.append(i)
                    last_backward = g
                    prev_end = g.end
                    continue
            elif last_backward is not None and not g.null:
                gap = text[last_backward.end:g.start]
                m = re.match(r"^\s*(?:,|and|;|,\s*and)?\s*(?P<sev>[\w -]{0,30}?)\s*(?:on\s+the\s+(?P<side>left|right)\s*)?(?:at|in)\s*(?:the\s+)?$", gap, re.I)
                if m and last_backward.claims and self.sev_re.fullmatch(m.group("sev").strip() or "-"):
                    sev = self._severity_of(m.group("sev"))
                    for i in last_backward.claims:
                        side = m.group("side").lower() if m.group("side") else None
                    claimed[i] = claimed[i] + [(lv, sev, side) for lv in g.levels]
                    g.claims.extend(last_backward.claims)
                    prev_end = g.end
                    continue
            prev_end = g.end
        for gi, g in enumerate(groups):
            if g.claims:
                continue
            stop = groups[gi + 1].start if gi + 1 < len(groups) else None
            after = [i for i in tidx if targets[i][0] >= g.end and (stop is None or targets[i][1] <= stop) and i not in claimed]
            for i in after:
                if self.clause_break.search(text, g.end, targets[i][0]):
                    # "At L4-5, ..." opens its clause: a comma right after the level is not a break.
                    brk = self.clause_break.search(text, g.end, targets[i][0])
                    if text[g.end:brk.start()].strip(" ,:"):
                        break
                claimed[i] = [(lv, None, None) for lv in g.levels]
                g.claims.append(i)

    def root_levels(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, level) of each stated root with a role ("exiting left L5" -> L5-S1)."""
        out = []
        for start, end, m in self.scans[self.root_role_mention].matches(text):
            lv = self.level_from_root(m.group("roots").upper(), m.group("role").lower(), [])
            if lv:
                out.append((start, end, lv))
        return out

    # ------------------------------------------------------- other attributes
    def _severity_of(self, fragment: str):
        m = self.sev_re.search(fragment)
        if not m:
            return None
        return self._sev_name(m)

    def _sev_name(self, m: re.Match) -> str:
        for key, value in m.groupdict().items():
            if value is not None and key.startswith("s"):
                return self.sev_names[int(key[1:])]
        return None

    def pre_window(self, text: str, floor: int, start: int) -> int:
        lo = max(floor, start - 80)
        cut = lo
        for m in self.pre_break.finditer(text, lo, start):
            cut = m.end()
        return cut

    def post_window(self, text: str, end: int, ceiling: int) -> int:
        hi = min(ceiling, end + 80)
        m = self.post_break.search(text, end, hi)
        return m.start() if m else hi

    def side_in(self, fragment: str, nearest_last: bool = True):
        if self.side_screen_scan is not None and not self.side_screen_scan.found_in(fragment):
            return None
        hits = []
        for side, scan in self.side_scans:
            for a, b in scan.spans(fragment):
                hits.append((a, b, side))
        if not hits:
            return None
        hits.sort()
        # a bilateral phrase ("right greater than left") outranks the single sides inside it
        best = hits[-1] if nearest_last else hits[0]
        for h in hits:
            if h[2] == "bilateral" and h[0] <= best[0] < h[1] + 1:
                return "bilateral"
        return best[2]

    def post_side_of(self, fragment: str):
        m = self.post_side.search(fragment)
        if not m:
            return None
        if m.group("b") or m.group("c") or m.group("g"):
            return "bilateral"
        word = (m.group("a") or m.group("d") or m.group("e") or m.group("f") or "").lower()
        return {"l": "left", "r": "right"}.get(word, word) or None

    def zones_in(self, fragment: str) -> list[tuple[int, str]]:
        if self.zone_screen_scan is not None and not self.zone_screen_scan.found_in(fragment):
            return []
        out = []
        taken: list[tuple[int, int]] = []
        for zone, regex in self.zones:
            for m in regex.finditer(fragment):
                if any(a <= m.start() < b for a, b in taken):
                    continue
                taken.append((m.start(), m.end()))
                out.append((m.start(), zone))
        out.sort()
        return out

    def stated_roots(self, fragment: str):
        if self.roots_need_digit and _DIGIT.search(fragment) is None:
            return [], None, None  # a root is named with its number (most targets and windows hold none)
        roots, role, side = [], None, None
        for m in self.root_mention.finditer(fragment):
            for tok in re.findall(r"[CTLS]?\d{1,2}", m.group("roots"), re.I):
                letter = re.match(r"[CTLS]", tok, re.I)
                prefix = letter.group(0).upper() if letter else (roots[-1][0] if roots else m.group("roots")[0].upper())
                root = prefix + re.sub(r"\D", "", tok)
                if root not in roots:
                    roots.append(root)
            role = role or (m.group("role") or "").lower() or None
            side = side or (m.group("side") or "").lower() or None
        if not roots:
            for m in self.root_role_mention.finditer(fragment):
                root = m.group("roots").upper()
                if root not in roots:
                    roots.append(root)
                role = role or m.group("role").lower()
                side = side or (m.group("side") or "").lower() or None
        return roots, role, side

    def floor_grade(self, fragment: str):
        if self.floor_screen is not None and not self.floor_screen.search(fragment):
            return None
        best = None
        for grade, regex in self.floors:
            if regex.search(fragment):
                best = grade if best is None else max(best, grade)
        return best

    def infer_roots(self, kind: str, level: str | None, zones: list[str], side) -> list[str]:
        if level is None or level not in self.exiting:
            return []
        roles = []
        if kind == "foraminal_stenosis":
            roles = ["exiting"]
        elif kind == "lateral_recess_stenosis":
            roles = ["traversing"]
        elif kind in ("nerve_root_impingement", "disc_herniation"):
            lateral = [z for z in zones if z in self.zone_role]
            if lateral:
                roles = [self.zone_role[z] for z in lateral]
            elif kind == "nerve_root_impingement" or side in ("left", "right"):
                roles = ["traversing"]
        roots = []
        for role in roles:
            root = self.exiting[level] if role == "exiting" else self.traversing[level]
            if root not in roots:
                roots.append(root)
        return roots

    def level_from_root(self, root: str, role: str | None, zones: list[str]) -> str | None:
        if role is None:
            lateral = [z for z in zones if z in self.zone_role]
            role = self.zone_role[lateral[0]] if lateral else "traversing"
        if root.startswith("C"):
            return self.level_of_exiting.get(root)
        if role == "exiting":
            return self.level_of_exiting.get(root)
        return self.level_of_traversing.get(root)

    # ---------------------------------------------------------------- findings
    def findings(self, doc: Doc) -> list[dict]:
        """Raw findings of ``doc``. A folding Attacher expects ASCII text (``ReportLevels`` sees to it) and
        reads its lowercased copy: the same offsets, and what it returns is normalised case anyway."""
        original = doc_text(doc)
        text = original.lower() if self.fold else original
        spans = list(doc.spans[SPAN_GROUP]) if SPAN_GROUP in doc.spans else []
        spans.sort(key=lambda s: s.start_char)
        if not spans:
            return []
        targets = [(s.start_char, s.end_char) for s in spans]
        sentences = [(a, b) for _, _, a, b in sentence_bounds(doc)]
        sent_starts = [s[0] for s in sentences]
        groups = self.level_groups(text, original if self.fold else None)
        set_doc_value(doc, "report_level_mentions", tuple((g.start, tuple(g.levels)) for g in groups if g.levels))
        level_lists = self.assign_levels(
            text, sentences, get_doc_value(doc, "report_paragraphs"), get_doc_value(doc, "report_blocks"),
            get_doc_value(doc, "report_level_headers"), targets, groups, self.root_levels(text),
        )
        sections = get_doc_value(doc, "report_sections")
        section_starts = [s[2] for s in sections]
        out: list[dict] = []
        infos: list[dict] = []
        for i, span in enumerate(spans):
            si = max(0, bisect_right(sent_starts, span.start_char) - 1)
            s_start, s_end = sentences[si] if sentences else (0, len(text))
            prev_end = s_start
            if i > 0 and spans[i - 1].end_char > s_start:
                prev_end = max(s_start, min(spans[i - 1].end_char, span.start_char))
            next_start = s_end
            if i + 1 < len(spans) and spans[i + 1].start_char < s_end:
                next_start = max(span.end_char, spans[i + 1].start_char)
            info = self._describe(text, span, prev_end, next_start)
            info["sentence"] = (s_start, s_end)
            # coordination ("canal and foraminal stenosis") and linking ("stenosis with impingement of")
            if i > 0 and spans[i - 1].end_char > s_start and infos:
                between = text[spans[i - 1].end_char:span.start_char]
                prev = infos[-1]
                if self.coordination.match(between):
                    for key in ("side", "severity", "pairs"):
                        if info[key] is None and prev[key] is not None:
                            info[key] = prev[key]
                    if not info["zones"] and span.label_ in ("disc_herniation", "disc_bulge"):
                        info["zones"] = prev["zones"]
                if span.label_ == "nerve_root_impingement" and (self.linking.match(between) or self.coordination.match(between)):
                    if info["side"] is None:
                        info["side"] = prev["side"] if prev["side"] != "central" else None
                    if not info["zones"]:
                        info["zones"] = prev["kind_zones"]
            infos.append(info)
        for i, span in enumerate(spans):
            info = infos[i]
            if info["side"] is None and span.label_ in ("disc_herniation", "disc_bulge") and i + 1 < len(spans):
                nxt = spans[i + 1]
                if nxt.label_ == "nerve_root_impingement" and nxt.start_char < info["sentence"][1]:
                    if self.linking.match(text[span.end_char:nxt.start_char]) and infos[i + 1]["side"] in ("left", "right"):
                        info["side"] = infos[i + 1]["side"]
            out.extend(self._emit(doc, span, info, level_lists[i], section_at(sections, span.start_char, section_starts)))
        return out

    def _describe(self, text: str, span, prev_end: int, next_start: int) -> dict:
        kind = span.label_
        t0, t1 = span.start_char, span.end_char
        pre_lo = self.pre_window(text, prev_end, t0)
        pre = text[pre_lo:t0]
        post_hi = self.post_window(text, t1, next_start)
        post = text[t1:post_hi]
        inside = text[t0:t1]
        # severity: pairs ("moderate left and mild right"), inside, nearest before, right after
        pairs = None
        pm = self.sev_pair.search(pre)
        if pm:
            pairs = [(self._severity_of(pm.group("a")), pm.group("sa").lower()), (self._severity_of(pm.group("b")), pm.group("sb").lower())]
        else:
            post_pairs = self.post_pairs.findall(post)
            if len(post_pairs) >= 2 and len({side.lower() for _, side in post_pairs}) == 2:
                pairs = [(self._severity_of(sev), side.lower()) for sev, side in post_pairs[:2]]
        severity = None
        m_in = list(self.sev_re.finditer(inside))
        if m_in:
            severity = self._sev_name(m_in[-1])
        else:
            m_pre = list(self.sev_re.finditer(pre))
            if m_pre:
                severity = self._sev_name(m_pre[-1])
            else:
                m_post = self.post_sev.match(post) or self.post_sev.match(text[t1:min(len(text), t1 + 60)]) if kind != CONCEPT_LABEL else None
                if m_post:
                    severity = self._sev_name(m_post)
        # the window is searched with the target after it: "L NF narrowing" needs to see "NF"
        side = self.side_in(inside) or (pre and self.side_in(pre + inside)) or self.post_side_of(post)
        if side is None and kind not in SPINE_KINDS_WITHOUT_SIDE and self.plural_bilateral.search(inside):
            side = "bilateral"
        zone_hits = []  # zone words matter only where the kind does not fix the zone
        if kind in ("disc_herniation", "disc_bulge", "nerve_root_impingement"):
            zone_hits = [z for _, z in self.zones_in(pre)] + [z for _, z in self.zones_in(inside)]
        if kind in ("disc_herniation", "disc_bulge"):
            zone_hits += [z for _, z in self.zones_in(post)]
        kind_zone = {
            "foraminal_stenosis": "foraminal",
            "lateral_recess_stenosis": "subarticular",
            "central_canal_stenosis": "central",
        }.get(kind)
        roots, role, root_side = self.stated_roots(inside)
        if not roots and kind in ("foraminal_stenosis", "lateral_recess_stenosis", "disc_herniation", "nerve_root_impingement"):
            roots, role, root_side = self.stated_roots(post)
        if side is None and root_side:
            side = root_side
        if kind in ("disc_herniation", "disc_bulge"):
            zones = zone_hits
            if side is None and "central" in zones and not [z for z in zones if z != "central"]:
                side = "central"
        elif kind == "nerve_root_impingement":
            zones = [z for z in zone_hits if z != "central"]
            if role:
                zones = [self.root_roles.get(role, zones[0] if zones else None)] if self.root_roles.get(role) else zones
        elif kind_zone:
            zones = [kind_zone]
        else:
            zones = []
        if kind in ("cord_compression", "cauda_equina_compression") or (kind in SPINE_KINDS_WITHOUT_SIDE and side == "central"):
            side = None
        floor = None
        if kind in ("nerve_root_impingement", "cord_compression", "cauda_equina_compression"):
            # active forms carry the relation word inside the target, passive ones just after it
            floor = self.floor_grade(inside) or self.floor_grade(text[t1:min(len(text), t1 + 40)].split(".")[0])
            if severity is not None and not m_in and not self.sev_at_end.search(pre[-25:]):
                severity = None  # a severity far before a root relation belongs to another finding
        return {
            "side": side,
            "severity": severity,
            "pairs": pairs,
            "zones": zones,
            "kind_zones": zones if zones else ([kind_zone] if kind_zone else []),
            "roots": roots,
            "role": role,
            "floor": floor,
        }

    def _emit(self, doc: Doc, span, info: dict, levels: list[tuple], where: tuple[str, str]) -> list[dict]:
        """The finding dicts of one target; ``where``: (category, role) of its section."""
        kind = span.label_
        status = {"negated": False, "uncertain": False, "historical": False, "hypothetical": False}
        certainty = "affirmed"
        cues = []
        for mod in get_span_value(span, "modifiers", ()):
            attr = STATUS_ATTRS.get(mod.category)
            if attr is None:
                continue
            status[attr] = True
            ms, me = mod.modifier_span
            cue = doc[ms:me]
            cues.append({"text": cue.text, "category": mod.category, "start": cue.start_char, "end": cue.end_char})
            if mod.category == "PROBABLE_EXISTENCE" and certainty == "affirmed":
                certainty = "probable"
            elif mod.category == "POSSIBLE_EXISTENCE":
                certainty = "possible"
        if status["negated"]:
            certainty = "negated"
        category, role = where
        section = category if role != "exam" else "other"
        zones = [z for z in info["zones"] if z]
        zone = None
        if zones:
            lateral = [z for z in zones if z != "central"]
            zone = (lateral or zones)[-1]
        if kind == "nerve_root_impingement" and not zones and info["roots"] and levels and levels[0][0]:
            level0, root0 = levels[0][0], info["roots"][0]
            if self.exiting.get(level0) != self.traversing.get(level0):
                if root0 == self.exiting.get(level0):
                    zones, zone = ["foraminal"], "foraminal"
                elif root0 == self.traversing.get(level0):
                    zones, zone = ["subarticular"], "subarticular"
        if kind == "nerve_root_impingement" and info["roots"] and info["role"] and levels and levels[0][0]:
            # a named exiting/traversing root fixes the level: it wins over a level carried from context
            root0 = info["roots"][0]
            if root0 not in (self.exiting.get(levels[0][0]), self.traversing.get(levels[0][0])):
                lv = self.level_from_root(root0, info["role"], zones)
                if lv:
                    levels = [(lv, sev, sd) for _, sev, sd in levels[:1]]
        if not levels and info["roots"]:
            lv = self.level_from_root(info["roots"][0], info["role"], zones)
            levels = [(lv, None, None)] if lv else []
        if not levels:
            levels = [(None, None, None)]
        variants: list[tuple] = []
        for level, sev_override, side_override in levels:
            if info["pairs"] and side_override is None:
                for sev, side in info["pairs"]:
                    variants.append((level, sev, side))
            else:
                variants.append((level, sev_override or info["severity"], side_override or info["side"]))
        out = []
        seen = set()
        rule = getattr(get_span_value(span, "target_rule", None), "literal", None)
        for level, severity, side in variants:
            key = (level, side)
            if key in seen:
                continue
            seen.add(key)
            grade = SEVERITY_GRADE.get(severity) if severity else info["floor"]
            if status["negated"]:
                severity, grade = None, None
            if info["roots"]:
                roots, inferred = list(info["roots"]), False
            else:
                roots, inferred = self.infer_roots(kind, level, zones, side), True
            if kind == CONCEPT_LABEL:
                roots, inferred, grade, severity, level, side, zone = [], False, None, None, None, None, None
            out.append(
                {
                    "kind": kind,
                    "level": level,
                    "side": side,
                    "zone": zone if kind != CONCEPT_LABEL else None,
                    "roots": roots,
                    "roots_inferred": inferred and bool(roots),
                    "severity": severity if severity in SEVERITY_GRADE else None,
                    "grade": grade,
                    **status,
                    "certainty": certainty,
                    "section": section,
                    "section_role": role,
                    "start": span.start_char,
                    "end": span.end_char,
                    "concept": get_span_value(span, "concept_name") if kind == CONCEPT_LABEL else None,
                    "rule": rule,
                    "cues": cues,
                    "sentence": info["sentence"],
                }
            )
        return out


def any_of(regexes: list[re.Pattern]) -> re.Pattern | None:
    """One regex that matches somewhere in a string exactly when one of ``regexes`` does (their
    alternation: a search succeeds where any branch matches at some position), or None when the
    patterns hold groups or backreferences that joining them could break."""
    patterns = [r.pattern for r in regexes]
    if not patterns or any("(?P" in p or re.search(r"\\\d", p) for p in patterns):
        return None
    if len({r.flags for r in regexes}) != 1:
        return None
    return re.compile("|".join(f"(?:{p})" for p in patterns), regexes[0].flags)


def _unique(items: list[str]) -> list[str]:
    seen = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


class ReportLevels(BatchComponent):
    """spaCy component: ``doc._.report_findings`` as plain dicts (one per target, level and side)."""

    def __init__(self, nlp: Language, name: str):
        self.name = name
        self.attacher = Attacher()
        self.folded = Attacher(fold=True)  # ASCII text: case-sensitive rules over its lowercased copy, ~30% faster

    def __call__(self, doc: Doc) -> Doc:
        attacher = self.folded if doc_text(doc).isascii() else self.attacher
        set_doc_value(doc, "report_findings", tuple(attacher.findings(doc)))
        return doc


@Language.factory(
    "report_nlp_levels",
    assigns=["doc._.report_findings"],
    requires=["doc.spans"],
)
def make_levels(nlp: Language, name: str) -> ReportLevels:
    return ReportLevels(nlp, name)
